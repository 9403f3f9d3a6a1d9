"""The secrets/PII stage: ``python -m spark_jobs.filters.pii_redact --snapshot 2026-10``.

Rewrites every file with emails, public IPs, keys, tokens and private keys replaced by placeholders
(:mod:`spark_jobs.filters.pii`); drops nothing. ``_stats.json`` metrics: ``redacted:<kind>`` and ``files_redacted``.
"""

from __future__ import annotations

import sys

from lake.cli import run_stage, stage_parser
from spark_jobs.filters.pii import KINDS, PiiRedactor
from spark_jobs.filters.runner import FilterStageConfig, run_filter_stage

STAGE = "pii_redact"


class PiiRedactConfig(FilterStageConfig):
    input: str = "decontaminate"
    # Which detectors to run (default: all of spark_jobs.filters.pii.KINDS).
    kinds: tuple[str, ...] = KINDS


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(STAGE, "Redact emails, public IP addresses, API keys, tokens and private keys.")

    def body(args, cfg) -> None:
        conf = cfg.stage(STAGE, PiiRedactConfig)
        run_filter_stage(STAGE, args.snapshot, cfg, conf, lambda _spark: PiiRedactor(conf.kinds))

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy: Spark workers unpickle the step by its module's name.
    from spark_jobs.filters.pii_redact import main as importable_main

    sys.exit(importable_main())
