"""The minimal-rules stage: ``python -m spark_jobs.filters.rule_filter --snapshot 2026-10``.

Reads the syntax filter's files by default; the rules themselves live in :mod:`spark_jobs.filters.rules`.
"""

from __future__ import annotations

import sys

from lake.cli import run_stage, stage_parser
from spark_jobs.filters.rules import RULES, RuleFilter, RulesConfig
from spark_jobs.filters.runner import FilterStageConfig, run_filter_stage

STAGE = "rule_filter"


class RuleFilterConfig(FilterStageConfig):
    input: str = "syntax_filter"
    # Names of the rules to apply, in order (default: all of spark_jobs.filters.rules.RULES).
    rules: tuple[str, ...] = tuple(rule.__name__ for rule in RULES)
    thresholds: RulesConfig = RulesConfig()


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(STAGE, "Drop non-code with a minimal rule set (blobs, long lines, generated, lock, "
                                 "minified, low alphanumeric share).")

    def body(args, cfg) -> None:
        conf = cfg.stage(STAGE, RuleFilterConfig)
        run_filter_stage(STAGE, args.snapshot, cfg, conf, lambda _spark: RuleFilter(conf.thresholds, conf.rules))

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy: Spark workers unpickle the step by its module's name.
    from spark_jobs.filters.rule_filter import main as importable_main

    sys.exit(importable_main())
