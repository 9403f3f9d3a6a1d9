"""Running one request in one slot: compile, run (once, per stdio case, or under the Python harness), judge.

A step is spawned with asyncio, its stdout and stderr are read as they come and kept up to the cap (a program
that writes more is killed: ``output_limit``), stdin is fed and closed, and a wall-clock timer kills the whole
tree (SIGKILL to bubblewrap, which takes its PID namespace down; then every process of the slot's uid is
killed). Only then are the verdict and status channels read, so nothing the program left can still write.

A pass is decided here, on the host: for ``stdio`` tests by comparing each case's output with the expected
one; for Python ``asserts`` tests by the one line the harness's judge writes on the verdict pipe, which must
carry this run's nonce (a 128-bit random token the program never sees) and must be all the pipe holds.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from training.sandbox import languages
from training.sandbox.config import Limits, SandboxConfig
from training.sandbox.isolation import DATA_DIR, WORK_DIR, Isolation, Step, json_lines, scratch_root, sweep_uid
from training.sandbox.models import (
    CommandRunResult,
    CommandRunStatus,
    RunResult,
    RunStatus,
    Tests,
    Timings,
    Verdict,
    canonical_language,
)

log = logging.getLogger(__name__)


def remove_tree(path: Path) -> None:
    """Remove a run's scratch directory, and say so when part of it stays (it would fill the disk unnoticed, e.g. a
    slot's build directory when the server lacks CAP_DAC_OVERRIDE)."""
    failures = []

    def failed(_function, failed_path, exc_info):
        if not isinstance(exc_info[1], FileNotFoundError):
            failures.append((failed_path, exc_info[1]))

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=lambda function, where, error: failed(function, where, (type(error), error, None)))
    else:
        shutil.rmtree(path, onerror=failed)
    if failures:
        where, error = failures[0]
        log.warning("sandbox: %d path(s) under %s could not be removed (first %s: %s)", len(failures), path, where,
                    error)

VERDICT_BYTES = 8192
_CPU_SIGNALS = {signal.SIGXCPU, signal.SIGKILL}
# What each runtime prints when it runs out of memory (Python, C++, JVM, V8, Go).
_MEMORY_MARKERS = (b"MemoryError", b"std::bad_alloc", b"java.lang.OutOfMemoryError",
                   b"insufficient memory for the Java Runtime", b"heap out of memory",
                   b"runtime: out of memory", b"fatal error: out of memory")


@dataclass
class StepOutcome:
    status: CommandRunStatus
    return_code: int | None
    stdout: bytes
    stderr: bytes
    seconds: float
    timed_out: bool = False
    output_limit: bool = False
    cpu_limit: bool = False
    setup_error: str = ""
    verdict: bytes = b""

    def as_result(self) -> CommandRunResult:
        return CommandRunResult(status=self.status, execution_time=round(self.seconds, 4),
                                return_code=self.return_code, stdout=self.stdout.decode("utf-8", "replace"),
                                stderr=self.stderr.decode("utf-8", "replace"))


class Job:
    """One request, validated: language, program, files, tests, limits, stdin."""

    def __init__(self, code: str, language: str, tests: Tests | None, limits: Limits, *, stdin: str | None = None,
                 files: dict[str, str | None] | None = None):
        self.language = canonical_language(language)
        self.recipe = languages.recipe(self.language)
        self.code = code
        self.tests = tests
        self.limits = limits
        self.stdin = stdin
        self.files = decode_files(files or {})
        if tests is not None and tests.kind == "asserts" and self.language != "python":
            raise ValueError("asserts tests run under the Python harness only; give other languages stdio cases "
                             "(an in-process verdict of a compiled program could be forged by the program)")
        if tests is not None and tests.kind == "stdio" and not tests.cases:
            raise ValueError("stdio tests need at least one case")
        if tests is not None and tests.kind == "asserts" and not tests.code.strip() and not tests.entry_point:
            raise ValueError("asserts tests need test code (an empty test would pass any program that loads)")


def decode_files(files: dict[str, str | None]) -> dict[str, bytes]:
    """SandboxFusion's ``files`` (path -> base64) as in-sandbox work-dir paths -> bytes; None entries skipped."""
    out = {}
    for name, content in files.items():
        if content is None:
            continue
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or not path.parts or name.startswith("~"):
            raise ValueError(f"file path {name!r} must be relative, inside the work dir")
        try:
            out[f"{WORK_DIR}/{path}"] = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"file {name!r} is not valid base64") from None
    return out


def same_output(actual: str, expected: str) -> bool:
    """Line-by-line equality, trailing whitespace and trailing blank lines ignored.

    >>> same_output("1 2 \\n3\\n\\n", "1 2\\n3")
    True
    >>> same_output("1 2\\n3", "1 2 3")
    False
    """
    def lines(text: str) -> list[str]:
        return [line.rstrip() for line in text.rstrip().splitlines()]

    return lines(actual) == lines(expected)


class Executor:
    """Runs the steps of jobs in slots (one uid per slot)."""

    def __init__(self, cfg: SandboxConfig, isolation: Isolation):
        self.cfg = cfg
        self.isolation = isolation
        self.scratch = scratch_root(cfg)

    # -- one request -----------------------------------------------------------------------------------
    async def judge(self, job: Job, slot: int) -> RunResult:
        result = await self._judge(job, slot)
        t = result.timings
        result.timings = Timings(queue=t.queue, compile=round(t.compile, 4), run=round(t.run, 4),
                                 total=round(t.total, 4))
        return result

    async def _judge(self, job: Job, slot: int) -> RunResult:
        t0 = time.monotonic()
        timings = Timings()
        recipe = job.recipe
        main_class = languages.java_main_class(job.code) if job.language == "java" else "Main"
        source = f"{main_class}.java" if job.language == "java" else recipe.source
        files = {**job.files, f"{DATA_DIR}/{source}": job.code.encode("utf-8")}
        run_limits = languages.run_limits(recipe, job.limits, self.cfg.limits.memory_limit_MB)
        build = None
        try:
            compile_result = None
            if recipe.compile is not None:
                build = self._build_dir(slot)
                argv = [a.replace(f"{DATA_DIR}/{recipe.source}", f"{DATA_DIR}/{source}") for a in recipe.compile]
                outcome = await self.step(Step(argv=argv, limits=languages.compile_limits(job.limits), files=files,
                                               env=recipe.env, build_dir=build, build_writable=True),
                                          slot, timeout=job.limits.compile_timeout,
                                          max_output=job.limits.max_output_bytes)
                timings.compile = outcome.seconds
                compile_result = outcome.as_result()
                if outcome.setup_error:
                    return self._sandbox_error(outcome, compile_result, None, timings, t0)
                if outcome.timed_out or outcome.return_code != 0:
                    verdict = Verdict.compile_timeout if outcome.timed_out else Verdict.compile_error
                    timings.total = time.monotonic() - t0
                    return RunResult(status=RunStatus.Failed, compile_result=compile_result,
                                     verdict=verdict if job.tests is not None else None,
                                     detail=outcome.stderr.decode("utf-8", "replace")[-2000:], timings=timings,
                                     isolation=self.mode)
            run_argv = recipe.run_argv(languages.program_memory_MB(job.limits, self.cfg.limits.memory_limit_MB),
                                       main_class)
            if job.tests is None or job.tests.kind == "stdio":
                return await self._run_plain(job, slot, files, run_argv, run_limits, build, compile_result,
                                             timings, t0)
            return await self._run_harness(job, slot, files, run_limits, compile_result, timings, t0)
        finally:
            if build is not None:
                await asyncio.to_thread(remove_tree, build)

    @property
    def mode(self) -> str:
        return "degraded" if self.isolation.degraded else "full"

    def _build_dir(self, slot: int) -> Path:
        path = self.scratch / f"build-{self.isolation.uid(slot)}-{secrets.token_hex(6)}"
        path.mkdir(mode=0o700)
        if self.isolation.is_root:
            uid = self.isolation.uid(slot)
            os.chown(path, uid, uid)
        return path

    def _sandbox_error(self, outcome: StepOutcome, compile_result, run_result, timings: Timings, t0: float):
        timings.total = time.monotonic() - t0
        return RunResult(status=RunStatus.SandboxError, message=outcome.setup_error, compile_result=compile_result,
                         run_result=run_result, verdict=Verdict.sandbox_error, detail=outcome.setup_error,
                         timings=timings, isolation=self.mode)

    async def _run_plain(self, job: Job, slot: int, files, argv, limits, build, compile_result, timings, t0):
        cases = job.tests.cases if job.tests is not None else [None]
        results: list[CommandRunResult] = []
        verdict, detail, outcome = Verdict.passed, "", None
        for index, case in enumerate(cases):
            stdin = case.stdin if case is not None else job.stdin
            outcome = await self.step(Step(argv=argv, limits=limits, files=files, env=job.recipe.env,
                                           build_dir=build), slot, timeout=job.limits.run_timeout,
                                      stdin=stdin.encode("utf-8") if stdin is not None else None,
                                      max_output=job.limits.max_output_bytes)
            timings.run += outcome.seconds
            results.append(outcome.as_result())
            if outcome.setup_error:
                return self._sandbox_error(outcome, compile_result, results[-1], timings, t0)
            verdict = _step_verdict(outcome)
            if verdict is None and case is not None:
                if same_output(outcome.stdout.decode("utf-8", "replace"), case.stdout):
                    verdict = Verdict.passed
                else:
                    verdict = Verdict.wrong_answer
                    detail = f"case {index}: the output differs from the expected one"
            if verdict not in (None, Verdict.passed):
                if not detail:
                    detail = f"case {index}: " if case is not None else ""
                    detail += outcome.stderr.decode("utf-8", "replace")[-2000:]
                break
        timings.total = time.monotonic() - t0
        status = RunStatus.Success if outcome.status == CommandRunStatus.Finished and outcome.return_code == 0 \
            else RunStatus.Failed
        if job.tests is None:
            return RunResult(status=status, compile_result=compile_result, run_result=results[-1], timings=timings,
                             isolation=self.mode)
        if verdict != Verdict.passed:
            status = RunStatus.Failed
        return RunResult(status=status, compile_result=compile_result, run_result=results[-1], verdict=verdict,
                         detail=detail, cases=results, timings=timings, isolation=self.mode)

    async def _run_harness(self, job: Job, slot: int, files, limits, compile_result, timings, t0):
        files = {**files, f"{DATA_DIR}/program.py": job.code.encode("utf-8"),
                 f"{DATA_DIR}/tests.py": job.tests.code.encode("utf-8"),
                 f"{DATA_DIR}/harness.py": languages.harness_source()}
        env = {"SEEDCODER_ENTRY_POINT": job.tests.entry_point or ""}
        nonce = secrets.token_hex(16).encode()
        # The judge and the worker are two processes of the run, each under the data limit.
        limits = languages.StepLimits(**{**limits.__dict__, "processes": limits.processes + 1})
        outcome = await self.step(Step(argv=["python3", "-I", "-B", f"{DATA_DIR}/harness.py"], limits=limits,
                                       files=files, env=env), slot, timeout=job.limits.run_timeout,
                                  max_output=job.limits.max_output_bytes, nonce=nonce)
        timings.run = outcome.seconds
        timings.total = time.monotonic() - t0
        result = outcome.as_result()
        if outcome.setup_error:
            return self._sandbox_error(outcome, compile_result, result, timings, t0)
        verdict, detail = parse_verdict(outcome, nonce)
        status = RunStatus.Success if verdict == Verdict.passed else RunStatus.Failed
        return RunResult(status=status, compile_result=compile_result, run_result=result, verdict=verdict,
                         detail=detail, timings=timings, isolation=self.mode)

    # -- one step --------------------------------------------------------------------------------------
    async def step(self, step: Step, slot: int, *, timeout: float, max_output: int, stdin: bytes | None = None,
                   nonce: bytes | None = None) -> StepOutcome:
        """Run one command in the slot, to its end or its kill; nothing of it is left when this returns."""
        host_root = None
        own_fds: list[int] = []  # our ends, closed at the end
        child_fds: list[int] = []  # their ends, closed right after the spawn
        status_r = None
        verdict_r = None
        try:
            if self.isolation.degraded:
                host_root = self.scratch / f"run-{self.isolation.uid(slot)}-{secrets.token_hex(6)}"
                host_root.mkdir(mode=0o711)
            if nonce is not None:
                nonce_r, nonce_w = os.pipe()
                os.write(nonce_w, nonce)
                os.close(nonce_w)
                verdict_r, verdict_w = os.pipe()
                own_fds.append(verdict_r)
                child_fds += [nonce_r, verdict_w]
                step.env = {**step.env, "SEEDCODER_NONCE_FD": str(nonce_r), "SEEDCODER_VERDICT_FD": str(verdict_w)}
            argv, memfds = self.isolation.command(step, slot, host_root)
            child_fds += memfds
            if not self.isolation.degraded:
                status_r, status_w = os.pipe()
                own_fds.append(status_r)
                child_fds.append(status_w)
                at = argv.index(self.isolation.tool(self.cfg.bwrap)) + 1
                argv[at:at] = ["--json-status-fd", str(status_w)]
            return await self._spawn(argv, child_fds, slot, host_root, timeout=timeout, max_output=max_output,
                                     stdin=stdin, status_r=status_r, verdict_r=verdict_r)
        finally:
            for fd in own_fds + child_fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            if host_root is not None:
                await asyncio.to_thread(remove_tree, host_root)

    async def _spawn(self, argv, child_fds, slot, host_root, *, timeout, max_output, stdin, status_r, verdict_r):
        uid = self.isolation.uid(slot)
        cwd = str(host_root / WORK_DIR.lstrip("/")) if host_root is not None else "/"
        t0 = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, pass_fds=child_fds,
                start_new_session=True, env={}, cwd=cwd)
        except OSError as err:
            return StepOutcome(CommandRunStatus.Error, None, b"", b"", 0.0, setup_error=f"spawn failed: {err}")
        for fd in child_fds:
            os.close(fd)
        child_fds.clear()
        killed = asyncio.Event()
        state = {"output_limit": False}

        statuses: list[dict] = []

        def kill() -> None:
            """SIGKILL the namespace's PID 1 (the kernel then kills all it holds), then bubblewrap itself."""
            if killed.is_set():
                return
            killed.set()
            if status_r is not None:
                statuses.extend(json_lines(_read_available(status_r, 1 << 16)))
            targets = [s["child-pid"] for s in statuses if "child-pid" in s]
            for target in (*(lambda p=p: os.kill(p, signal.SIGKILL) for p in targets),
                           lambda: os.killpg(proc.pid, signal.SIGKILL), proc.kill):
                try:
                    target()
                except (ProcessLookupError, PermissionError):
                    pass

        async def drain(stream, keep: bytearray) -> None:
            total = 0
            while chunk := await stream.read(1 << 16):
                total += len(chunk)
                if len(keep) < max_output:
                    keep += chunk[: max_output - len(keep)]
                if total > max_output:
                    state["output_limit"] = True
                    kill()

        async def feed() -> None:
            try:
                proc.stdin.write(stdin)
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                try:
                    proc.stdin.close()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        out, err = bytearray(), bytearray()
        tasks = [asyncio.create_task(drain(proc.stdout, out)), asyncio.create_task(drain(proc.stderr, err))]
        if stdin is not None:
            tasks.append(asyncio.create_task(feed()))
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            timed_out = not killed.is_set()
            kill()
            await proc.wait()
        seconds = time.monotonic() - t0
        if status_r is not None:
            statuses.extend(json_lines(_read_available(status_r, 1 << 16)))
        ended = any("exit-code" in s for s in statuses)
        # Everything of the slot's uid dies now. When bubblewrap saw the namespace's PID 1 exit by itself, the
        # kernel had already killed and reaped the rest of the namespace (PID 1's exit waits for that), so
        # nothing of the uid can be left; after a kill, in degraded mode or without that report, sweep by uid.
        if self.isolation.is_root and (killed.is_set() or not ended):
            await asyncio.to_thread(sweep_uid, uid)
        try:
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        except TimeoutError:
            log.error("slot %d: output pipes still open after the kill; abandoning them", slot)
            for task in tasks:
                task.cancel()
        verdict = _read_available(verdict_r, VERDICT_BYTES + 1) if verdict_r is not None else b""
        started = any("child-pid" in s for s in statuses)
        exit_code = next((s["exit-code"] for s in statuses if "exit-code" in s), None)
        rc = proc.returncode
        if status_r is not None and not started and not timed_out and not state["output_limit"]:
            return StepOutcome(CommandRunStatus.Error, None, bytes(out), bytes(err), seconds,
                               setup_error="the sandbox could not be set up: "
                                           + bytes(err).decode("utf-8", "replace")[-1000:])
        return_code = exit_code if exit_code is not None else rc
        if return_code is not None and return_code < 0:
            return_code = 128 - return_code
        cpu = return_code is not None and return_code - 128 in _CPU_SIGNALS and not killed.is_set()
        if timed_out or cpu:
            status, return_code = CommandRunStatus.TimeLimitExceeded, None
        else:
            status = CommandRunStatus.Finished
        return StepOutcome(status, return_code, bytes(out), bytes(err), seconds, timed_out=timed_out or cpu,
                           output_limit=state["output_limit"], cpu_limit=cpu, verdict=verdict)


def _read_available(fd: int, limit: int) -> bytes:
    """What the pipe holds now (its writers are gone), at most ``limit`` bytes."""
    os.set_blocking(fd, False)
    parts, size = [], 0
    while size < limit:
        try:
            chunk = os.read(fd, min(65536, limit - size))
        except BlockingIOError:
            break
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _step_verdict(outcome: StepOutcome) -> Verdict | None:
    """The verdict a step's end alone decides (None: it exited 0, the output decides)."""
    if outcome.output_limit:
        return Verdict.output_limit
    if outcome.timed_out:
        return Verdict.timeout
    if outcome.return_code != 0:
        tail = outcome.stderr[-8192:]
        if any(marker in tail for marker in _MEMORY_MARKERS):
            return Verdict.memory_limit
        return Verdict.runtime_error
    return None


def parse_verdict(outcome: StepOutcome, nonce: bytes) -> tuple[Verdict, str]:
    """The harness's verdict, if the channel holds exactly one well-formed line with this run's nonce."""
    ended = _step_verdict(outcome)
    if ended in (Verdict.output_limit, Verdict.timeout):
        return ended, ""
    data = outcome.verdict
    if not data:
        if outcome.return_code == 0:
            return Verdict.no_verdict, "the program ended without the harness reporting that the tests ran"
        return ended or Verdict.runtime_error, outcome.stderr.decode("utf-8", "replace")[-2000:]
    lines = data.split(b"\n")
    if len(data) > VERDICT_BYTES or len(lines) != 2 or lines[1] or not lines[0].startswith(nonce + b" "):
        return Verdict.tampered, "the verdict channel holds something the harness did not write"
    kind, _, detail = lines[0][len(nonce) + 1:].partition(b" ")
    try:
        verdict = Verdict(kind.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return Verdict.tampered, "the verdict channel holds an unknown verdict"
    if verdict == Verdict.passed and outcome.return_code != 0:
        return Verdict.runtime_error, "the harness reported a pass but the run did not end cleanly"
    return verdict, detail.decode("utf-8", "replace")
