"""The bounded worker pool: ``await pool.run(...)`` from asyncio, up to ``workers`` programs at once.

Each worker is a slot with a uid of its own. Slots are claimed with a lock file per uid (``flock``), so two pools
on one machine (two evaluation jobs, a test run beside the RL trainer) never share a uid: the per-uid process
limit and the after-step sweep by uid stay per program. The isolation is checked once per process and
configuration before the first program runs (fail closed, see isolation.py).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterable

from training.sandbox.config import Limits, SandboxConfig
from training.sandbox.isolation import Isolation, SandboxUnavailable, processes_of, scratch_root, sweep_uid
from training.sandbox.models import RunCodeRequest, RunCodeResponse, RunResult, RunStatus, Tests, Verdict
from training.sandbox.runner import Executor, Job

log = logging.getLogger(__name__)

# uids a pool may claim: uid_base .. uid_base + UID_RANGE - 1.
UID_RANGE = 1024
_probe_lock = threading.Lock()
_probed: dict[str, dict | SandboxUnavailable] = {}


def check_isolation(cfg: SandboxConfig) -> Isolation:
    """An :class:`Isolation` that passed the probe (cached per configuration), or a degraded one if allowed."""
    isolation = Isolation(cfg)
    key = cfg.model_dump_json()
    with _probe_lock:
        if key not in _probed:
            try:
                _probed[key] = isolation.probe()
            except SandboxUnavailable as err:
                _probed[key] = err
        outcome = _probed[key]
    if isinstance(outcome, SandboxUnavailable):
        if not cfg.allow_degraded:
            raise outcome
        log.warning("SANDBOX DEGRADED: %s. Programs run with rlimits%s only and can see this machine's files "
                    "and network (allow_degraded is set).", outcome, " and their own uid" if isolation.is_root else "")
        isolation.degraded = True
    return isolation


class SandboxPool:
    """Run untrusted programs, ``workers`` at a time.

        async with SandboxPool(workers=2) as pool:
            result = await pool.run("def f(x): return x + 1", "python",
                                    Tests(code="assert f(1) == 2"))
            results = await pool.run_many([dict(code=..., language="cpp", tests=...), ...])
    """

    def __init__(self, cfg: SandboxConfig | None = None, *, workers: int | None = None):
        self.cfg = cfg or SandboxConfig()
        self.workers = workers or self.cfg.workers or os.cpu_count() or 1
        self.isolation: Isolation | None = None
        self.executor: Executor | None = None
        self._slots: asyncio.Queue[int] | None = None
        self._locks: list[int] = []
        self.completed = 0

    async def start(self) -> SandboxPool:
        if self._slots is not None:
            return self
        self.isolation = await asyncio.to_thread(check_isolation, self.cfg)
        self.executor = Executor(self.cfg, self.isolation)
        self._slots = asyncio.Queue()
        for slot in self._claim_slots():
            self._slots.put_nowait(slot)
        return self

    def _claim_slots(self) -> list[int]:
        if not self.isolation.is_root:  # one uid (ours) for every slot: nothing to claim
            return list(range(self.workers))
        locks = scratch_root(self.cfg) / "locks"
        locks.mkdir(exist_ok=True)
        slots = []
        for slot in range(UID_RANGE):
            if len(slots) == self.workers:
                break
            fd = os.open(locks / f"uid-{self.cfg.uid_base + slot}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._locks.append(fd)
            slots.append(slot)
            # A pool whose process was killed (a SIGKILLed stage) can leave a sandbox process behind (seen: an
            # orphaned bubblewrap child, asleep, after an RL round was killed mid-judge). The uid is ours now:
            # nothing of its previous owner may stay.
            if stray := processes_of(self.cfg.uid_base + slot):
                log.warning("sandbox uid %d: killing %d process(es) left by a pool that died without closing: %s",
                            self.cfg.uid_base + slot, len(stray), stray)
                sweep_uid(self.cfg.uid_base + slot, deadline_s=5.0)
        if len(slots) < self.workers:
            raise SandboxUnavailable(f"only {len(slots)} of {self.workers} sandbox uids are free in "
                                     f"{self.cfg.uid_base}..{self.cfg.uid_base + UID_RANGE - 1}")
        return slots

    async def close(self) -> None:
        for fd in self._locks:
            os.close(fd)
        self._locks.clear()
        self._slots = None

    async def __aenter__(self) -> SandboxPool:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def run(self, code: str, language: str = "python", tests: Tests | None = None,
                  limits: Limits | None = None, *, stdin: str | None = None,
                  files: dict[str, str | None] | None = None) -> RunResult:
        """Run ``code`` (judged against ``tests`` when given) in the next free slot."""
        await self.start()
        t0 = time.monotonic()
        try:
            job = Job(code, language, tests, limits or self.cfg.limits, stdin=stdin, files=files)
        except ValueError as err:
            return RunResult(status=RunStatus.SandboxError, message=str(err), detail=str(err),
                             verdict=Verdict.sandbox_error if tests is not None else None)
        slot = await self._slots.get()
        queued = time.monotonic() - t0
        try:
            result = await self.executor.judge(job, slot)
        finally:
            self._slots.put_nowait(slot)
        result.timings.queue = round(queued, 4)
        result.timings.total = round(result.timings.total + queued, 4)
        self.completed += 1
        return result

    async def run_many(self, requests: Iterable[dict], *, progress_every: int = 0) -> list[RunResult]:
        """Run every request (keyword arguments of :meth:`run`), ``workers`` at a time; results in order."""
        await self.start()
        requests = list(requests)
        done = 0
        t0 = time.monotonic()

        async def one(request: dict) -> RunResult:
            nonlocal done
            result = await self.run(**request)
            done += 1
            if progress_every and (done % progress_every == 0 or done == len(requests)):
                elapsed = time.monotonic() - t0
                log.info("sandbox: %d/%d programs judged (%.1f/s)", done, len(requests), done / max(elapsed, 1e-9))
            return result

        return list(await asyncio.gather(*(one(r) for r in requests)))

    async def run_code(self, request: RunCodeRequest) -> RunCodeResponse:
        """SandboxFusion's ``run_code``: run the program once, report its steps."""
        if request.fetch_files:
            return RunCodeResponse(status=RunStatus.SandboxError,
                                   message="fetch_files is not supported: the sandbox's files are gone after the run")
        limits = self.cfg.limits.model_copy(update={
            "compile_timeout": request.compile_timeout, "run_timeout": request.run_timeout,
            "memory_limit_MB": request.memory_limit_MB if request.memory_limit_MB > 0
            else self.cfg.limits.memory_limit_MB})
        result = await self.run(request.code, request.language, None, limits, stdin=request.stdin,
                                files=request.files)
        return result.to_run_code_response(os.environ.get("MY_POD_NAME"))


def run(code: str, language: str = "python", tests: Tests | None = None, limits: Limits | None = None, *,
        stdin: str | None = None, files: dict[str, str | None] | None = None,
        cfg: SandboxConfig | None = None) -> RunResult:
    """Run one program and judge it (blocking). For many programs use :class:`SandboxPool` from asyncio."""

    async def once() -> RunResult:
        async with SandboxPool(cfg, workers=1) as pool:
            return await pool.run(code, language, tests, limits, stdin=stdin, files=files)

    return asyncio.run(once())
