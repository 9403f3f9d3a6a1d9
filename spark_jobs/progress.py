"""Progress of a Spark stage in its task log: the running Spark jobs' tasks done / total, rate and ETA.

Spark's own console progress bar is off (it draws with carriage returns, which a task log turns into noise). A
daemon thread polls the driver's status tracker every ``every_s`` seconds and logs one
:func:`lake.progress.progress_line` per poll while a Spark job runs, e.g.
``near_dedup-2026-10 (Spark jobs 12, 13): 310/400 tasks (77.5%), 4.1 tasks/s, ETA 22s``. :func:`spark_session`
starts it once per Spark context, so every Spark stage (crawl, dedup, filters, dataset build) reports progress.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from lake.progress import EVERY_S, progress_line

log = logging.getLogger("progress.spark")


class SparkProgress(threading.Thread):
    def __init__(self, spark_context, label: str, *, every_s: float = EVERY_S,
                 emit: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic):
        super().__init__(name=f"spark-progress-{label}", daemon=True)
        self.sc, self.label, self.every_s = spark_context, label, every_s
        self.emit = emit or log.info
        self.clock = clock
        self.stopped = threading.Event()
        self._last: tuple[tuple[int, ...], int, float] | None = None

    def poll(self) -> str | None:
        """One line about the active jobs, or None when no job runs."""
        tracker = self.sc.statusTracker()
        jobs = tuple(sorted(tracker.getActiveJobsIds()))
        if not jobs:
            self._last = None
            return None
        total = done = 0
        for job in jobs:
            info = tracker.getJobInfo(job)
            for stage_id in (info.stageIds if info else ()):
                stage = tracker.getStageInfo(stage_id)
                if stage is not None:
                    total += stage.numTasks
                    done += stage.numCompletedTasks
        now, rate = self.clock(), None
        if self._last is not None and self._last[0] == jobs and now > self._last[2]:
            rate = max(done - self._last[1], 0) / (now - self._last[2])
        self._last = (jobs, done, now)
        names = ", ".join(str(j) for j in jobs)
        return progress_line(f"{self.label} (Spark job{'s' if len(jobs) > 1 else ''} {names})", done, total or None,
                             rate, "tasks")

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            try:
                line = self.poll()
            except Exception:  # the context stopped under us: nothing left to report
                return
            if line:
                self.emit(line)

    def stop(self) -> None:
        self.stopped.set()


def start_progress(spark, label: str) -> SparkProgress:
    """The context's progress reporter, started on first call (one per Spark context)."""
    sc = spark.sparkContext
    reporter = getattr(sc, "_seedcoder_progress", None)
    if reporter is None or not reporter.is_alive():
        reporter = SparkProgress(sc, label)
        sc._seedcoder_progress = reporter
        reporter.start()
    return reporter
