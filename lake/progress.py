"""Progress lines for long stages: done / total, rate and ETA, at a steady cadence in the task log.

A stage calls :meth:`Progress.advance` as often as it likes; a line is logged when ``every_s`` seconds have passed
since the last one (and once at the end), so the log of a 10-hour stage has a line every half minute, not one per
record. ``SEEDCODER_PROGRESS_EVERY_S`` sets the cadence (default 30 s). Work adopted from a killed run counts
toward "done" but not toward the rate, so the ETA stays honest after a resume.

Spark stages get the same lines from :mod:`spark_jobs.progress`, which reads Spark's status tracker.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

EVERY_S = float(os.environ.get("SEEDCODER_PROGRESS_EVERY_S", "30"))


def duration(seconds: float | None) -> str:
    """A short human duration.

    >>> duration(42), duration(125), duration(3 * 3600 + 65), duration(None)
    ('42s', '2m05s', '3h01m', '?')
    """
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_line(label: str, done: int, total: int | None, rate: float | None, unit: str) -> str:
    """One progress line.

    >>> progress_line("score", 1200, 4800, 40.0, "files")
    'score: 1,200/4,800 files (25.0%), 40.0 files/s, ETA 1m30s'
    >>> progress_line("crawl", 3, None, None, "repositories")
    'crawl: 3 repositories, ? repositories/s'
    """
    speed = f"{rate:,.1f} {unit}/s" if rate is not None else f"? {unit}/s"
    if not total:
        return f"{label}: {done:,} {unit}, {speed}"
    eta = (total - done) / rate if rate else None
    return f"{label}: {done:,}/{total:,} {unit} ({100.0 * done / total:.1f}%), {speed}, ETA {duration(eta)}"


class Progress:
    """Counts work done and logs :func:`progress_line` every ``every_s`` seconds.

    >>> t = [0.0]; lines = []
    >>> p = Progress("score", 100, unit="files", every_s=10, emit=lines.append, clock=lambda: t[0])
    >>> p.skip(20); t[0] = 5; p.advance(10); t[0] = 11; p.advance(10); p.finish()
    >>> lines
    ['score: 40/100 files (40.0%), 1.8 files/s, ETA 33s', 'score: 40/100 files (40.0%), 1.8 files/s, ETA 33s']
    """

    def __init__(self, label: str, total: int | None, *, unit: str = "records", every_s: float = EVERY_S,
                 emit: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic):
        self.label, self.total, self.unit, self.every_s = label, total, unit, every_s
        self.emit = emit or logging.getLogger(f"progress.{label}").info
        self.clock = clock
        self.start = self.last = clock()
        self.done = self.adopted = 0

    def rate(self) -> float | None:
        elapsed = self.clock() - self.start
        worked = self.done - self.adopted
        return worked / elapsed if elapsed > 0 and worked > 0 else None

    def line(self) -> str:
        return progress_line(self.label, self.done, self.total, self.rate(), self.unit)

    def skip(self, n: int) -> None:
        """Work already done by an earlier (killed) attempt: counts as done, not toward the rate."""
        self.done += n
        self.adopted += n

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.every_s:
            self.last = now
            self.emit(self.line())

    def finish(self) -> None:
        self.emit(self.line())
