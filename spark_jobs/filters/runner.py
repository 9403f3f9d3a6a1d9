"""Where a filter step runs: Spark (``mapInArrow`` over the input stage's files) or locally (pyarrow, per part file).

Both engines feed the same :func:`~spark_jobs.filters.base.apply_batch` and write the same two datasets:

- ``files``: the kept (possibly rewritten) FILES records, read by the next stage;
- ``quarantine``: every excluded record, whole, with ``reason``/``detail``/``stage`` (QUARANTINE), so a
  threshold can be changed and its effect audited without re-crawling.

``_stats.json`` gets records and bytes in/out, the drop reasons with counts, and the steps' metrics summed.
The local engine is sharded by input part file and resumable (a killed run re-run with the same attempt skips
finished parts; nothing is written twice). The Spark engine recomputes into a fresh attempt on a re-run; either
way the committed partition is replaced atomically, so a re-run never duplicates or loses records.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from lake.config import PlatformConfig, StrictModel
from lake.faults import FailureTally, check_failures
from lake.stage import OUT_BY_LANGUAGE, StageRun
from spark_jobs.filters.base import (
    CONTEXT_FLAG,
    OUTCOME,
    PipelineStep,
    apply_batches,
    apply_batches_in_context,
    repositories_of,
    split_outcomes,
)

log = logging.getLogger(__name__)

StepFactory = Callable[[Any], PipelineStep]  # called with the SparkSession (None locally) so a step can broadcast


class RepositoryContext(StrictModel):
    """Where a step with ``context_languages`` finds each document's repository (the compile check's headers)."""

    # The stage whose files are the repositories (the crawl: whole trees). Null, or not committed for the snapshot:
    # the stage's own input (recorded in the stats as `context_input`).
    stage: str | None = "crawl"
    max_bytes: int = 256 << 20


class FilterStageConfig(StrictModel):
    """Options every filter stage shares (each stage's section extends this)."""

    # The stage whose committed `files` dataset this stage reads.
    input: str
    # spark: mapInArrow on the profile's Spark; local: pyarrow in this process, resumable per input part file.
    engine: Literal["spark", "local"] = "spark"
    # Records per Arrow batch handed to the step: bounds executor memory (128 files of up to 1 MiB each).
    batch_size: int = Field(128, ge=1, le=65536)


class StageOutcome:
    """Counts gathered from OUTCOME rows (shared by both engines)."""

    def __init__(self) -> None:
        self.records_in = self.records_out = self.bytes_in = self.bytes_out = 0
        self.drops: Counter[str] = Counter()
        self.metrics: Counter[str] = Counter()
        self.out_by_language: Counter[str] = Counter()

    def to_stats(self, run: StageRun) -> None:
        run.stats.records_in += self.records_in
        run.stats.records_out += self.records_out
        run.stats.bytes_in += self.bytes_in
        run.stats.bytes_out += self.bytes_out
        for reason, n in sorted(self.drops.items()):
            run.stats.drop(reason, n)
        merged = Counter(run.stats.metrics.get("step", {}))
        merged.update(self.metrics)
        run.stats.metrics["step"] = dict(sorted(merged.items()))
        by_language = Counter(run.stats.metrics.get(OUT_BY_LANGUAGE, {}))
        by_language.update(self.out_by_language)
        run.stats.metrics[OUT_BY_LANGUAGE] = dict(sorted(by_language.items()))

    def to_json(self) -> dict[str, Any]:
        return {"records_in": self.records_in, "records_out": self.records_out, "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out, "drops": dict(self.drops), "metrics": dict(self.metrics),
                "out_by_language": dict(self.out_by_language)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StageOutcome:
        out = cls()
        for key in ("records_in", "records_out", "bytes_in", "bytes_out"):
            setattr(out, key, int(raw[key]))
        out.drops.update(raw["drops"])
        out.metrics.update(raw["metrics"])
        out.out_by_language.update(raw.get("out_by_language", {}))
        return out

    def add(self, other: StageOutcome) -> None:
        for key in ("records_in", "records_out", "bytes_in", "bytes_out"):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.drops.update(other.drops)
        self.metrics.update(other.metrics)
        self.out_by_language.update(other.out_by_language)


def run_filter_stage(stage: str, snapshot: str, cfg: PlatformConfig, conf: FilterStageConfig,
                     make_step: StepFactory, context: RepositoryContext | None = None) -> StageRun:
    """Run ``make_step``'s step over ``conf.input``'s committed files and commit ``stage``. A step with
    ``context_languages`` gets each such document's repository from ``context``."""
    lake = cfg.open_lake()
    lake.require(snapshot, conf.input)
    context = context or RepositoryContext()
    context_input = context.stage if context.stage and lake.commit_info(snapshot, context.stage) else conf.input
    if context.stage and context_input != context.stage:
        log.warning("%s: context stage %r is not committed for %s; repositories come from the input %r", stage,
                    context.stage, snapshot, conf.input)
    params = {"input": conf.input, "config": conf.model_dump(mode="json"), "context_input": context_input}
    with StageRun(lake, snapshot, stage, resume=conf.engine == "local", params=params) as run:
        if conf.engine == "spark":
            _run_spark(run, cfg, conf, make_step, context_input, context.max_bytes)
        else:
            _run_local(run, conf, make_step(None), _fingerprint(params), context_input, context.max_bytes)
        run.stats.metrics["input"] = conf.input
        run.stats.metrics["engine"] = conf.engine
        step_metrics = run.stats.metrics.get("step", {})
        tally = FailureTally(stage, items=run.stats.records_in, failures=step_metrics.get("item_error", 0))
        tally.by_type.update({k.split(":", 1)[1]: v for k, v in step_metrics.items() if k.startswith("item_error:")})
        check_failures(stage, tally, cfg.item_failures)  # raising here leaves the attempt uncommitted
    return run


def _run_spark(run: StageRun, cfg: PlatformConfig, conf: FilterStageConfig, make_step: StepFactory,
               context_input: str, max_context_bytes: int) -> None:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from lake.schemas import FILES, QUARANTINE, to_spark_schema
    from spark_jobs.session import spark_session

    spark = spark_session(cfg, f"{run.stage}-{run.snapshot}")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(conf.batch_size))
    files = spark.read.parquet(run.lake.dataset_uri(run.snapshot, conf.input, "files", for_spark=True))
    step, stage = make_step(spark), run.stage
    schema = to_spark_schema(OUTCOME)
    languages = sorted(step.context_languages)
    if not languages:
        outcomes = files.select(*FILES.names).mapInArrow(lambda batches: apply_batches(step, batches, stage), schema)
    else:
        # Documents in `languages` meet their repository: the context stage's files in those languages and the
        # documents, clustered by repository, context first (in path order). One repository's context in memory.
        in_context = F.coalesce(F.col("language").isin(languages), F.lit(False))
        plain = files.where(~in_context).select(*FILES.names).mapInArrow(
            lambda batches: apply_batches(step, batches, stage), schema)
        repos = spark.read.parquet(run.lake.dataset_uri(run.snapshot, context_input, "files", for_spark=True))
        grouped = (repos.where(in_context).select(*FILES.names, F.lit(True).alias(CONTEXT_FLAG))
                   .unionByName(files.where(in_context).select(*FILES.names, F.lit(False).alias(CONTEXT_FLAG)))
                   .repartition("repo").sortWithinPartitions("repo", F.desc(CONTEXT_FLAG), "path"))
        rows = conf.batch_size
        outcomes = plain.unionByName(grouped.mapInArrow(
            lambda batches: apply_batches_in_context(step, batches, stage, max_context_bytes, rows), schema))
        run.stats.metrics["context_input"] = context_input
    # Persisted: the two writes and the stats all read the outcomes; recomputing would re-run the step (re-parse,
    # re-scan) three times. Disk-backed so a big partition never fails for lack of executor memory.
    outcomes = outcomes.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        dropped = F.col("reason").isNotNull()
        outcomes.where(~dropped).select(*FILES.names).write.mode("overwrite").parquet(
            run.dataset_uri("files", for_spark=True))
        outcomes.where(dropped).select(*QUARANTINE.names).write.mode("overwrite").parquet(
            run.dataset_uri("quarantine", for_spark=True))
        totals = StageOutcome()
        size_in = files.agg(F.count(F.lit(1)).alias("n"), F.coalesce(F.sum("size_bytes"), F.lit(0)).alias("b")).first()
        totals.records_in, totals.bytes_in = int(size_in["n"]), int(size_in["b"])
        for row in outcomes.groupBy("reason", "language").agg(F.count(F.lit(1)).alias("n"),
                                                              F.sum("size_bytes").alias("b")).collect():
            if row["reason"] is None:
                totals.records_out += int(row["n"])
                totals.bytes_out += int(row["b"] or 0)
                totals.out_by_language[row["language"]] += int(row["n"])
            else:
                totals.drops[row["reason"]] += int(row["n"])
        for row in outcomes.select(F.explode("metrics")).groupBy("key").agg(F.sum("value").alias("n")).collect():
            totals.metrics[row["key"]] = int(row["n"])
        totals.to_stats(run)
    finally:
        outcomes.unpersist()


def _fingerprint(params: dict[str, Any]) -> str:
    """Identity of a configuration: a resumed attempt reuses only parts computed under the same one."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _run_local(run: StageRun, conf: FilterStageConfig, step: PipelineStep, fingerprint: str, context_input: str,
               max_context_bytes: int) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    repositories = None
    if step.context_languages:  # the same repositories Spark's clustering gives (repositories_of documents it)
        wanted = sorted(step.context_languages)
        rows = (row for batch in run.lake.iter_batches(run.snapshot, context_input, "files",
                                                       ["repo", "path", "language", "content", "size_bytes"])
                for row in batch.filter(pc.is_in(batch.column("language"), pa.array(wanted))).to_pylist())
        repositories = repositories_of(rows, max_context_bytes)
        log.info("%s: %d repositories with %s files as context (from %s)", run.stage, len(repositories),
                 "/".join(wanted), context_input)
        run.stats.metrics["context_input"] = context_input
    keys = [k for k in run.lake.dataset_keys(run.snapshot, conf.input, "files") if k.endswith(".parquet")]
    totals = StageOutcome()
    t0 = time.monotonic()
    for index, key in enumerate(keys):
        shard = f"part-{index:05d}"
        if run.shard_done(shard):
            info = run.shard_info(shard)
            if info.get("config") == fingerprint:
                totals.add(StageOutcome.from_json(info))
                log.info("%s: %s already done (resumed attempt), skipping", run.stage, shard)
                continue
            log.info("%s: %s was done under another configuration, redoing it", run.stage, shard)
        source = list(pq.ParquetFile(io.BytesIO(run.storage.read_bytes(key))).iter_batches(
            batch_size=conf.batch_size))
        table = pa.Table.from_batches(list(apply_batches(step, iter(source), run.stage, repositories)),
                                      schema=OUTCOME)
        kept, quarantine = split_outcomes(table)
        run.write_table("files", kept, index)
        run.write_table("quarantine", quarantine, index)
        part = _count(table)
        part.bytes_in = sum(pc.sum(batch.column("size_bytes")).as_py() or 0 for batch in source)
        run.mark_shard_done(shard, {**part.to_json(), "config": fingerprint})
        totals.add(part)
        log.info("%s: part %d/%d done: %d in, %d kept, drops %s (%.1f records/s)", run.stage, index + 1, len(keys),
                 part.records_in, part.records_out, dict(part.drops),
                 totals.records_in / max(time.monotonic() - t0, 1e-9))
    totals.to_stats(run)


def _count(table) -> StageOutcome:
    """Counts of one OUTCOME table (``bytes_in`` is the caller's: a rewrite changes sizes)."""
    out = StageOutcome()
    rows = table.select(["reason", "size_bytes", "metrics", "language"]).to_pylist()
    out.records_in = len(rows)
    for row in rows:
        if row["reason"] is None:
            out.records_out += 1
            out.bytes_out += row["size_bytes"]
            out.out_by_language[row["language"]] += 1
        else:
            out.drops[row["reason"]] += 1
        for key, value in row["metrics"] or []:
            out.metrics[key] += value
    return out
