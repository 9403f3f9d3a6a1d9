"""Fixed costs of a stage run: process start, Spark session, model and engine loads, kept apart from the work.

A stage's ``_stats.json`` says how long the stage took (``seconds``: its :class:`~lake.stage.StageRun`, open to
commit). What it does not say by itself is how much of a stage *process* went to costs that do not depend on the
data: starting Python and importing the stack, starting a JVM and a Spark session, loading a model or starting a
vLLM engine. Code that pays such a cost wraps it in :func:`fixed_cost` (or reports it with :func:`record`); the
stage run commits the costs of its process under ``fixed_costs`` in its stats, with ``process_start`` (process
creation to the moment the stage's run opened, less the costs recorded before it) and the costs paid inside
the run. The main command prints them per stage (scripts/pipeline.py) so a slow chain can be read as
"fixed cost" vs "work".

Costs accumulate per process and per kind (two model loads add up); :func:`take` hands them to the commit and
starts over, so a process running several stages (a warm local driver) reports each stage's own costs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_costs: dict[str, float] = {}
# The process's start on the wall clock, read once (Linux /proc; None elsewhere).
_PROCESS_START: float | None = None
# Where the next stage run's start-up is counted from: the process's start, then the previous run's commit
# (a stage given several ids runs them in one process), or a warm driver's request (mark_start).
_epoch: float | None = None


def process_started_at() -> float | None:
    """Wall-clock time (``time.time()``) at which this process was created, or None when unknown."""
    global _PROCESS_START
    if _PROCESS_START is None:
        try:
            with open(f"/proc/{os.getpid()}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            ticks = int(fields[19])  # field 22 of proc(5): starttime, clock ticks after boot
            with open("/proc/uptime", "rb") as f:
                uptime = float(f.read().split()[0])
            _PROCESS_START = time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None
    return _PROCESS_START


def record(kind: str, seconds: float) -> None:
    """Add ``seconds`` of fixed cost of ``kind`` (``spark_session``, ``model_load``, ``vllm_engine``, ...)."""
    with _lock:
        _costs[kind] = _costs.get(kind, 0.0) + max(0.0, float(seconds))


@contextmanager
def fixed_cost(kind: str) -> Iterator[None]:
    """Time the block as a fixed cost of ``kind``.

    >>> with fixed_cost("doctest_kind"):
    ...     pass
    >>> "doctest_kind" in take()
    True
    """
    t0 = time.monotonic()
    try:
        yield
    finally:
        record(kind, time.monotonic() - t0)


def take() -> dict[str, float]:
    """The costs recorded since the last call (rounded to ms), and start over."""
    with _lock:
        out = {k: round(v, 3) for k, v in sorted(_costs.items())}
        _costs.clear()
    return out


def mark_start(at: float | None = None) -> None:
    """Count the next stage run's start-up from ``at`` (wall clock; default now): a warm driver calls this when
    a request arrives, and a committed run when it ends."""
    global _epoch
    _epoch = time.time() if at is None else at


def epoch() -> float | None:
    """Wall-clock time the current stage run's start-up counts from (see :func:`mark_start`)."""
    return _epoch if _epoch is not None else process_started_at()


def startup_seconds(opened_at: float, already_counted: float = 0.0) -> float | None:
    """Seconds from :func:`epoch` to ``opened_at`` (wall clock) not already counted as another fixed cost:
    interpreter start, imports, argument parsing and config. None when the process start is unknown."""
    started = epoch()
    if started is None:
        return None
    return round(max(0.0, opened_at - started - already_counted), 3)
