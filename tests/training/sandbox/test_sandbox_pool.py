"""The pool (bounded concurrency, a uid per slot, uids never shared between pools), the fail-closed start, degraded
mode, and how the host reads the verdict channel."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from sandbox_helpers import CFG, leftovers, needs_isolation, run, run_many

from training.sandbox import SandboxConfig, SandboxPool, SandboxUnavailable, Tests, Verdict
from training.sandbox.models import CommandRunStatus
from training.sandbox.runner import StepOutcome, parse_verdict

NONCE = b"0123456789abcdef0123456789abcdef"


def outcome(verdict: bytes = b"", rc: int | None = 0, **kw) -> StepOutcome:
    return StepOutcome(CommandRunStatus.Finished, rc, b"", b"", 0.1, verdict=verdict, **kw)


@pytest.mark.parametrize(("channel", "rc", "expected"), [
    (NONCE + b" passed \n", 0, Verdict.passed),
    (NONCE + b" wrong_answer AssertionError: assert f(1) == 2\n", 1, Verdict.wrong_answer),
    (b"", 0, Verdict.no_verdict),
    (b"", 1, Verdict.runtime_error),
    (b"f" * 32 + b" passed \n", 0, Verdict.tampered),
    (NONCE + b" passed \n" + NONCE + b" passed \n", 0, Verdict.tampered),
    (b"junk" + NONCE + b" passed \n", 0, Verdict.tampered),
    (NONCE + b" passed ", 0, Verdict.tampered),
    (NONCE + b" excellent \n", 0, Verdict.tampered),
    (NONCE + b" passed \n", 1, Verdict.runtime_error),
])
def test_only_one_well_formed_line_with_the_nonce_is_a_verdict(channel, rc, expected):
    assert parse_verdict(outcome(channel, rc), NONCE)[0] == expected


def test_the_end_of_a_run_outranks_its_channel():
    assert parse_verdict(outcome(NONCE + b" passed \n", None, timed_out=True), NONCE)[0] == Verdict.timeout
    assert parse_verdict(outcome(NONCE + b" passed \n", 0, output_limit=True), NONCE)[0] == Verdict.output_limit


@needs_isolation
def test_at_most_workers_programs_run_at_once_each_slot_with_its_uid():
    code = ("import os, sys, time\nstart = time.time()\ntime.sleep(0.6)\n"
            "print(sys.argv, os.getuid(), start, time.time())\n")
    results = run_many([{"code": f"# program {i}\n" + code, "language": "python"} for i in range(6)], workers=2)
    spans, uids = [], set()
    for result in results:
        _argv, uid, start, end = result.run_result.stdout.split()[-4:]
        spans.append((float(start), float(end)))
        uids.add(int(uid))
    assert uids <= {CFG.uid_base + i for i in range(4)} and len(uids) == 2 and 0 not in uids
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running, most = 0, 0
    for _t, step in events:
        running += step
        most = max(most, running)
    assert most <= 2
    assert sum(r.timings.queue > 0.3 for r in results) >= 2  # the later ones waited for a slot
    assert leftovers() == []


@needs_isolation
def test_results_come_back_in_request_order():
    results = run_many([{"code": f"print({i})", "language": "python"} for i in range(8)], workers=2)
    assert [r.run_result.stdout for r in results] == [f"{i}\n" for i in range(8)]


@needs_isolation
def test_two_pools_never_share_a_uid():
    async def both():
        async with SandboxPool(CFG, workers=2) as a, SandboxPool(CFG, workers=2) as b:
            code = "import os, time\ntime.sleep(0.3)\nprint(os.getuid())"
            results = await asyncio.gather(*(pool.run(code) for pool in (a, b) for _ in range(2)))
            return {int(r.run_result.stdout) for r in results}

    assert len(asyncio.run(both())) == 4


def test_the_pool_refuses_to_start_without_its_isolation():
    broken = SandboxConfig(bwrap="/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable):
        run("print(1)", cfg=broken)
    cli = subprocess.run([sys.executable, "-m", "training.sandbox", "run", "/dev/null"], capture_output=True,
                         text=True, env={"PATH": "/nonexistent"}, timeout=120)
    assert cli.returncode == 1 and "refusing to run" in cli.stderr


@needs_isolation
def test_a_probe_that_finds_a_hole_refuses_too():
    # a sandbox without /usr cannot even start the probe's shell: the check fails, nothing runs
    with pytest.raises(SandboxUnavailable, match="isolation check failed"):
        run("print(1)", cfg=SandboxConfig(ro_paths=("/etc/ld.so.cache",)))


@needs_isolation
def test_degraded_mode_runs_with_rlimits_and_its_own_uid_only_when_allowed():
    cfg = SandboxConfig(bwrap="/nonexistent/bwrap", allow_degraded=True)
    result = run("import os\ndef add(a, b):\n    return a + b\nprint(os.getuid())", "python",
                 Tests(code="assert add(2, 2) == 4", entry_point="add"), cfg=cfg)
    assert result.isolation == "degraded" and result.verdict == Verdict.passed
    assert int(result.run_result.stdout) == cfg.uid_base
    assert run("import os\nos._exit(0)", "python", Tests(code="assert 0"), cfg=cfg).verdict != Verdict.passed
    assert leftovers() == []


@needs_isolation
def test_check_command_reports_the_isolation():
    cli = subprocess.run([sys.executable, "-m", "training.sandbox", "check"], capture_output=True, text=True,
                         timeout=120)
    assert cli.returncode == 0, cli.stderr
    facts = json.loads(cli.stdout)
    assert facts["isolation"] == "full" and facts["netdevs"] == "lo" and facts["capeff"] == "0" * 16


@needs_isolation
def test_empty_tests_are_refused_not_passed():
    result = run("x = 1", "python", Tests(code="  \n"))
    assert result.status == "SandboxError" and result.verdict == Verdict.sandbox_error and "empty" in result.message


def test_a_scratch_directory_that_cannot_be_removed_is_reported(tmp_path, monkeypatch, caplog):
    """Regression: cleanup used rmtree(ignore_errors=True), so a slot's build directory that root could not remove
    (a server without CAP_DAC_OVERRIDE) stayed on disk without a word."""
    import os

    from training.sandbox.runner import remove_tree

    scratch = tmp_path / "build-61000-x"
    (scratch / "sub").mkdir(parents=True)
    (scratch / "sub" / "main").write_text("binary")
    real_unlink = os.unlink

    def refuse(path, *args, **kwargs):
        if str(path).endswith("main"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refuse)
    with caplog.at_level("WARNING", logger="training.sandbox.runner"):
        remove_tree(scratch)
    assert (scratch / "sub" / "main").exists()
    assert "could not be removed" in caplog.text and "Permission denied" in caplog.text
    monkeypatch.setattr(os, "unlink", real_unlink)
    caplog.clear()
    with caplog.at_level("WARNING", logger="training.sandbox.runner"):
        remove_tree(scratch)
        remove_tree(scratch)  # already gone: nothing to report
    assert not scratch.exists() and caplog.text == ""


def test_a_slot_claimed_from_a_dead_pool_is_swept_first(caplog):
    """A process left running as a sandbox uid by a pool whose process was killed (nothing closed it) is killed
    when a new pool claims that uid, before any program runs there."""
    import os
    import time

    from training.sandbox.isolation import processes_of

    if os.geteuid() != 0:
        pytest.skip("slots have uids of their own only as root")
    async def claimed() -> list[int]:
        async with SandboxPool(CFG, workers=1) as probe:  # the uid the next pool will claim first
            return list(probe._slots._queue)

    (slot,) = asyncio.run(claimed())
    uid = CFG.uid_base + slot
    # An orphan, as a killed pool's leftover is (setsid -f: its parent exits at once, so init reaps it once killed).
    subprocess.run(["setsid", "-f", "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
                    "sleep", "300"], check=True)
    deadline = time.monotonic() + 10
    while not (stray := processes_of(uid)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        caplog.set_level("WARNING", logger="training.sandbox.pool")
        assert run("print(41 + 1)").run_result.stdout == "42\n"
        assert f"sandbox uid {uid}: killing 1 process(es) left by a pool that died without closing" in caplog.text
        assert not any(os.path.exists(f"/proc/{pid}/cmdline") and open(f"/proc/{pid}/cmdline").read()
                       for pid in stray), "the stray still runs"
        assert leftovers() == []
    finally:
        for pid in stray:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
