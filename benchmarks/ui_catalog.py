"""The UI's lake reads on a lake of many snapshots: LakeCatalog (cached, revalidated) vs the uncached reader.

Builds (or reuses) a lake of ``--snapshots`` snapshots x 14 committed stages (pointers and stats only, through the
real StageRun commit), then times what the Snapshots page needs (every stage pointer of every snapshot):

- peer: ``Lake.committed_stages`` per snapshot, the plain reader scripts/pipeline.py's summary uses (an exists and
  a read per pointer, nothing cached);
- catalog cold: a fresh ``LakeCatalog`` (every pointer read once, ``--workers`` concurrent);
- catalog warm: the same catalog within its TTL (no I/O);
- catalog revalidate: TTL expired, nothing changed (local: a stat per pointer; S3: a 304 per pointer);
- catalog after one commit: TTL expired, one pointer changed.

    python benchmarks/ui_catalog.py --snapshots 300                                   # local lake in a temp dir
    python benchmarks/ui_catalog.py --snapshots 300 --root s3://seedcoder-lake/ui-bench \\
        --endpoint http://127.0.0.1:8333                                              # scripts/services.sh's S3

Prints the machine's load before and after (benchmarks/quiet.py) and the ratios peer / catalog.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from benchmarks.quiet import MachineGuard, add_quiet_arguments  # noqa: E402
from lake.catalog import LakeCatalog  # noqa: E402
from lake.stage import OUT_BY_LANGUAGE, Lake, StageRun  # noqa: E402

STAGES = ["crawl", "exact_dedup", "near_dedup", "syntax_filter", "rule_filter", "decontaminate", "pii_redact",
          "oracle_label", "train_scorer", "score", "quality_filter", "tokenizer", "dataset_build", "pretrain"]


def snapshot_ids(n: int) -> list[str]:
    return [f"{2000 + i // 12:04d}-{i % 12 + 1:02d}" for i in range(n)]


def build(lake: Lake, snapshots: list[str]) -> None:
    for k, snapshot in enumerate(snapshots):
        if lake.commit_info(snapshot, STAGES[-1]) is not None:
            continue
        for stage in STAGES:
            with StageRun(lake, snapshot, stage) as run:
                run.stats.records_in, run.stats.records_out = 10_000 + k, 9_000 + k
                run.stats.drop("example_reason", 1_000)
                run.stats.metrics[OUT_BY_LANGUAGE] = {"Python": 6_000, "C": 3_000 + k}
        print(f"built {k + 1}/{len(snapshots)} snapshots", end="\r", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshots", type=int, default=300, help="snapshots in the lake (default 300)")
    parser.add_argument("--root", default=None, help="lake root (path or s3://bucket/prefix); default: a temp dir")
    parser.add_argument("--endpoint", default=None, help="S3 endpoint for a non-AWS server")
    parser.add_argument("--workers", type=int, default=16, help="the catalog's concurrent pointer checks")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (median)")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    tmp = None
    if args.root is None:
        tmp = tempfile.TemporaryDirectory(prefix="ui-bench-")
        args.root = tmp.name
    lake = Lake.at(args.root, endpoint_url=args.endpoint)
    snapshots = snapshot_ids(args.snapshots)
    build(lake, snapshots)
    guard = MachineGuard.from_args(args)

    def peer():
        for snapshot in lake.snapshots():
            lake.committed_stages(snapshot)

    cold_catalogs = []

    def cold():
        catalog = LakeCatalog(lake, ttl_s=3600, workers=args.workers)
        catalog.many(catalog.snapshots())
        cold_catalogs.append(catalog)

    catalog = LakeCatalog(lake, ttl_s=3600, workers=args.workers)
    catalog.many(catalog.snapshots())
    expired = LakeCatalog(lake, ttl_s=0.0, workers=args.workers)
    expired.many(expired.snapshots())

    def after_commit():
        with StageRun(lake, snapshots[0], "crawl") as run:
            run.stats.records_in = run.stats.records_out = 1
        t0 = time.perf_counter()
        expired.many(expired.snapshots())
        return time.perf_counter() - t0

    results = {"peer (Lake.committed_stages)": timed(peer, args.repeat),
               "catalog cold": timed(cold, args.repeat),
               "catalog warm (within TTL)": timed(lambda: catalog.many(catalog.snapshots()), args.repeat),
               "catalog revalidate (nothing changed)": timed(lambda: expired.many(expired.snapshots()), args.repeat),
               "catalog after one commit": statistics.median(after_commit() for _ in range(args.repeat))}
    pointers = len(snapshots) * len(STAGES)
    print(guard.report())
    print(f"# lake {lake.root}: {len(snapshots)} snapshots x {len(STAGES)} stages = {pointers} pointers, "
          f"workers {args.workers}, median of {args.repeat}")
    print("| read of every pointer | seconds | peer / this |")
    print("| --- | ---: | ---: |")
    base = results["peer (Lake.committed_stages)"]
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.4f} | {base / seconds:.1f}x |")
    for c in cold_catalogs + [catalog, expired]:
        c.close()
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
