"""Where the Spark near-dedup job spends its time: the benchmark's run of it, with Spark's event log read back stage
by stage (wall time, tasks, shuffle bytes written and read, task run time).

    python -m benchmarks.near_dedup_spark_profile /tmp/nd19q/x1/corpus [--conf KEY=VALUE ...]

The job is run by ``benchmarks/near_dedup_peers.py``'s ``run_spark``, as the benchmark runs it (the local profile's
session, file level, verification on, the numba kernels warmed first), with Spark's event log switched on.
``--conf`` adds Spark settings to try (for example ``spark.driver.extraJavaOptions=-XX:+UseParallelGC``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path


def stage_rows(event_log: Path) -> list[dict]:
    """One dict per completed stage of an uncompressed Spark event log."""
    rows = []
    for line in event_log.read_text().splitlines():
        event = json.loads(line)
        if event.get("Event") != "SparkListenerStageCompleted":
            continue
        info = event["Stage Info"]
        acc = {a["Name"]: a.get("Value") for a in info.get("Accumulables", [])}

        def metric(name: str, acc: dict = acc) -> int:
            return int(acc.get(f"internal.metrics.{name}") or 0)

        rows.append({"stage": info["Stage ID"], "tasks": info["Number of Tasks"],
                     "wall_ms": info["Completion Time"] - info["Submission Time"],
                     "shuffle_write_mb": metric("shuffle.write.bytesWritten") >> 20,
                     "shuffle_read_mb": (metric("shuffle.read.remoteBytesRead")
                                         + metric("shuffle.read.localBytesRead")) >> 20,
                     "run_ms": metric("executorRunTime"), "name": info["Stage Name"]})
    return sorted(rows, key=lambda r: r["stage"])


def main(argv: list[str] | None = None) -> int:
    from benchmarks.near_dedup_peers import run_spark
    from benchmarks.quiet import MachineGuard, add_quiet_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path, help="a benchmark corpus folder with files.parquet "
                                                  "(benchmarks.near_dedup_corpus)")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark setting")
    parser.add_argument("--workdir", type=Path, default=None, help="outputs and event log (default: a temp dir)")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    if not (args.corpus / "files.parquet").is_file():
        parser.error(f"{args.corpus} has no files.parquet (give the corpus folder)")
    guard = MachineGuard.from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nd-profile-"))
    events = work / "events"
    events.mkdir(parents=True, exist_ok=True)
    conf = {"spark.eventLog.enabled": "true", "spark.eventLog.compress": "false", "spark.eventLog.dir": str(events)}
    conf.update(kv.split("=", 1) for kv in args.conf)
    result = run_spark(args.corpus, work, conf=conf)
    logs = sorted(events.glob("*/events_*")) or sorted(p for p in events.iterdir() if p.is_file())
    rows = stage_rows(logs[-1])
    print(f"start-up {result['startup_seconds']:.1f}s, job {result['seconds']:.1f}s, {len(result['pairs'])} pairs; "
          f"{len(rows)} stages, stage wall time summed {sum(r['wall_ms'] for r in rows) / 1000:.1f}s; "
          f"outputs in {work}")
    print("phases: " + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in result["phases"].items()))
    print(f"{'wall ms':>8} {'stage':>5} {'tasks':>5} {'shuf W MB':>9} {'shuf R MB':>9} {'task ms':>8}  name")
    for r in rows:
        print(f"{r['wall_ms']:>8} {r['stage']:>5} {r['tasks']:>5} {r['shuffle_write_mb']:>9} "
              f"{r['shuffle_read_mb']:>9} {r['run_ms']:>8}  {r['name'][:70]}")
    print(guard.report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
