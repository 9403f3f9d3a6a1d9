"""Spark stages log progress (tasks done / total, rate, ETA) from the driver's status tracker while a job runs."""

import re
import threading
import time

import pytest

from spark_jobs.progress import SparkProgress

pytestmark = pytest.mark.spark


def test_progress_lines_while_a_spark_job_runs(spark):
    lines: list[str] = []
    reporter = SparkProgress(spark.sparkContext, "test-stage", every_s=0.3, emit=lines.append)
    reporter.start()
    try:
        def slow(x):
            time.sleep(0.4)
            return x

        job = threading.Thread(target=lambda: spark.sparkContext.parallelize(range(16), 16).map(slow).count())
        job.start()
        job.join(timeout=300)
    finally:
        reporter.stop()
        reporter.join(timeout=10)
    assert lines, "no progress line while the job ran"
    pattern = re.compile(r"^test-stage \(Spark jobs? [\d, ]+\): (\d+)/16 tasks \([\d.]+%\), ([\d.?]+) tasks/s, ETA \S+$")
    matches = [pattern.match(line) for line in lines]
    assert all(matches), lines
    done = [int(m.group(1)) for m in matches]
    assert done == sorted(done) and done[-1] <= 16
    assert reporter.poll() is None, "no line when no job runs"
