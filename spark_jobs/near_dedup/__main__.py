"""``python -m spark_jobs.near_dedup --snapshot ID [--engine spark|local] [--config PATH]``."""

from __future__ import annotations

import sys

from lake.cli import run_stage, stage_parser
from spark_jobs.near_dedup.stage import run_near_dedup


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("near_dedup", "MinHash LSH near dedup of a snapshot at repository then file level, "
                                        "against the signature index of earlier snapshots (stages.near_dedup).")
    parser.add_argument("--engine", choices=["spark", "local"], default=None,
                        help="override stages.near_dedup.engine: spark (distributed) or local (one process)")
    return run_stage(parser, argv, lambda args, cfg: run_near_dedup(cfg, args.snapshot, engine=args.engine) and 0)


if __name__ == "__main__":
    sys.exit(main())
