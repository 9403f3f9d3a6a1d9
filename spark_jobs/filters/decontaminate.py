"""Decontamination: drop every file sharing a word 10-gram with an evaluation set.

``python -m spark_jobs.filters.decontaminate --snapshot 2026-10``

The index (:mod:`lake.ngrams`) is built once on the driver and broadcast; each executor process decodes it once
and probes it with vectorised ``searchsorted``, so the per-file cost is hashing the file's words. The quarantine
detail names the matched set and how many of the file's n-grams it shares.
"""

from __future__ import annotations

import sys
from typing import Any

from lake.cli import run_stage, stage_parser
from lake.ngrams import EvalNgramIndex, EvalSetsConfig
from spark_jobs.filters.base import BaseFilter
from spark_jobs.filters.runner import FilterStageConfig, run_filter_stage

STAGE = "decontaminate"
# id(broadcast) -> (broadcast, decoded index): one decode per executor process. Spark hands every task of a
# worker process the same Broadcast object; holding it here keeps its id from being reused.
_DECODED: dict[int, tuple[Any, EvalNgramIndex]] = {}


class DecontaminateConfig(FilterStageConfig):
    input: str = "rule_filter"
    # The evaluation sets and n (shared with the dataset build's final check through lake.ngrams).
    eval_sets: EvalSetsConfig = EvalSetsConfig()


class DecontaminationFilter(BaseFilter):
    """Keep a file only if none of its word n-grams is in the evaluation index.

    ``index`` is an :class:`EvalNgramIndex`, or a Spark broadcast of its ``to_bytes()`` (decoded lazily).
    """

    name = "contaminated"

    def __init__(self, index: Any):
        super().__init__()
        self._index = index

    @property
    def index(self) -> EvalNgramIndex:
        if isinstance(self._index, EvalNgramIndex):
            return self._index
        key = id(self._index)
        if key not in _DECODED:
            _DECODED[key] = (self._index, EvalNgramIndex.from_bytes(self._index.value))
        return _DECODED[key][1]

    def filter(self, doc: dict[str, Any]) -> bool | tuple[bool, str, str]:
        hit, name = self.index.contaminated(doc["content"])
        if not hit:
            return True
        self.count(f"contaminated:{name}")
        shared = ", ".join(f"{k}: {v}" for k, v in sorted(self.index.matches(doc["content"]).items()))
        return False, "contaminated", f"shares word {self.index.n}-grams with {shared}"


def make_step(settings: EvalSetsConfig, spark=None) -> DecontaminationFilter:
    index = EvalNgramIndex.from_settings(settings)
    if spark is None:
        return DecontaminationFilter(index)
    return DecontaminationFilter(spark.sparkContext.broadcast(index.to_bytes()))


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(STAGE, "Drop files with a word 10-gram overlap with evaluation sets (HumanEval, ...).")

    def body(args, cfg) -> None:
        conf = cfg.stage(STAGE, DecontaminateConfig)
        run_filter_stage(STAGE, args.snapshot, cfg, conf, lambda spark: make_step(conf.eval_sets, spark))

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy: Spark workers unpickle the step by its module's name.
    from spark_jobs.filters.decontaminate import main as importable_main

    sys.exit(importable_main())
