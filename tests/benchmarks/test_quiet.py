"""The benchmarks' quiet-machine guard: it waits for a quiet machine, refuses a busy one, and --allow-busy
measures at once (the tests' tiny benchmark runs use it; it once waited the full three minutes on a busy CI)."""

import pytest

from benchmarks import quiet


@pytest.fixture
def busy(monkeypatch):
    """A machine whose load never falls, and a clock that the guard's waiting moves forward."""
    clock = {"now": 0.0, "slept": 0.0}

    def sleep(seconds):
        clock["now"] += seconds
        clock["slept"] += seconds

    monkeypatch.setattr(quiet.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    monkeypatch.setattr(quiet.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(quiet.time, "sleep", sleep)
    return clock


def test_a_busy_machine_is_waited_for_then_refused(busy):
    with pytest.raises(SystemExit) as exit_:
        quiet.MachineGuard.check(max_load=0.5, wait_s=30, poll_s=5)
    assert exit_.value.code == quiet.BUSY_EXIT and busy["slept"] == 30


def test_allow_busy_measures_at_once_and_says_so(busy):
    guard = quiet.MachineGuard.check(max_load=0.5, wait_s=180, allow_busy=True)
    assert busy["slept"] == 0 and not guard.quiet_before
    assert "UNDER LOAD" in guard.report()


def test_a_quiet_machine_starts_at_once(busy, monkeypatch):
    monkeypatch.setattr(quiet.os, "getloadavg", lambda: (0.1, 0.2, 0.3))
    guard = quiet.MachineGuard.check(max_load=0.5, wait_s=180)
    assert busy["slept"] == 0 and guard.quiet_before and "quiet machine" in guard.report()
