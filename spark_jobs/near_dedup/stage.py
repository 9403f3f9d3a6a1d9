"""The near_dedup stage: read the input stage's committed `files`, dedup, commit `files`, `duplicates`, `signatures`.

Both engines write the same datasets with the same rows. A killed run leaves the committed partition as it was;
a re-run recomputes the snapshot from its committed input and replaces the partition as a whole, so nothing is
duplicated or lost.
"""

from __future__ import annotations

import logging
from collections import Counter

import pyarrow as pa

from lake.config import PlatformConfig
from lake.stage import OUT_BY_LANGUAGE, Commit, Lake, StageRun
from spark_jobs.dedup_clusters import summarise, summarise_spark
from spark_jobs.near_dedup.config import NearDedupConfig
from spark_jobs.near_dedup.index import STAGE, check_scheme, index_snapshots
from spark_jobs.near_dedup.outputs import scheme_tag

log = logging.getLogger(STAGE)
ROWS_PER_PART = 50_000


def run_near_dedup(cfg: PlatformConfig, snapshot: str, *, engine: str | None = None, spark=None) -> Commit:
    nd = cfg.stage(STAGE, NearDedupConfig)
    if engine:
        nd = nd.model_copy(update={"engine": engine})
    lake = cfg.open_lake()
    lake.require(snapshot, nd.input)
    earlier = index_snapshots(lake, snapshot, nd.index_snapshots, nd.input)
    hasher = nd.hasher()
    log.info("near dedup of %s (input %s, engine %s): %d-gram shingles, %d permutations, %d bands x %d rows, "
             "threshold %.2f, verify %s; S-curve P(candidate | J) = %s", snapshot, nd.input, nd.engine, nd.ngram,
             nd.num_perm, nd.bands, nd.rows, nd.threshold, nd.verify, hasher.s_curve())
    params = {**nd.model_dump(), "index_snapshots": earlier}
    with StageRun(lake, snapshot, STAGE, params=params) as run:
        if nd.engine == "local":
            _run_local(lake, run, nd, earlier)
        else:
            _run_spark(lake, run, nd, earlier, spark or _session(cfg, snapshot))
        run.stats.metrics["index_snapshots"] = earlier
        run.stats.metrics["scheme"] = scheme_tag(nd)
    return run._committed


def _session(cfg: PlatformConfig, snapshot: str):
    from spark_jobs.session import spark_session

    return spark_session(cfg, f"near_dedup-{snapshot}")


def _record_stats(run: StageRun, files_in: tuple[int, int], files_out: tuple[int, int], drops: dict, metrics: dict):
    run.stats.records_in, run.stats.bytes_in = files_in
    run.stats.records_out, run.stats.bytes_out = files_out
    for reason, count in drops.items():
        run.stats.drop(reason, int(count))
    run.stats.metrics.update(metrics)
    log.info("near dedup: %d files in, %d kept; drops %s; metrics %s", files_in[0], files_out[0], drops, metrics)


def _run_local(lake: Lake, run: StageRun, nd: NearDedupConfig, earlier: list[str]) -> None:
    from spark_jobs.near_dedup.local import dedup_table

    files = lake.read_table(run.snapshot, nd.input, "files")
    index = None
    if earlier:
        index = pa.concat_tables([lake.read_table(s, STAGE, "signatures") for s in earlier])
        check_scheme(set(index.column("scheme").to_pylist()), scheme_tag(nd), earlier)
    result = dedup_table(files, nd, snapshot=run.snapshot, index=index)
    result.metrics[OUT_BY_LANGUAGE] = dict(sorted(Counter(result.kept.column("language").to_pylist()).items()))
    labels = {i: f"{r}/{p}" for i, r, p in zip(*(files.column(c).to_pylist() for c in ("id", "repo", "path")),
                                                 strict=True)}
    result.metrics["clusters"] = summarise(zip(*(result.duplicates.column(c).to_pylist()
                                                 for c in ("level", "removed_id", "kept_id")), strict=True), labels)
    for name, table in (("files", result.kept), ("duplicates", result.duplicates), ("signatures", result.signatures)):
        for part, start in enumerate(range(0, max(table.num_rows, 1), ROWS_PER_PART)):
            run.write_table(name, table.slice(start, ROWS_PER_PART), part)
    size = pa.compute.sum
    _record_stats(run, (files.num_rows, int(size(files.column("size_bytes")).as_py() or 0)),
                  (result.kept.num_rows, int(size(result.kept.column("size_bytes")).as_py() or 0)),
                  dict(result.drops), result.metrics)


def _run_spark(lake: Lake, run: StageRun, nd: NearDedupConfig, earlier: list[str], spark) -> None:
    from pyspark.sql import functions as F

    from lake.schemas import FILES, to_spark_schema
    from spark_jobs.near_dedup.outputs import SIGNATURES
    from spark_jobs.near_dedup.spark import dedup_frames

    # Read with the lake's schemas: inferring them from the Parquet footers is a Spark job of its own.
    files = spark.read.schema(to_spark_schema(FILES)).parquet(
        lake.dataset_uri(run.snapshot, nd.input, "files", for_spark=True))
    index = None
    if earlier:
        index = spark.read.schema(to_spark_schema(SIGNATURES)).parquet(
            *[lake.dataset_uri(s, STAGE, "signatures", for_spark=True) for s in earlier])
        check_scheme({r[0] for r in index.select("scheme").distinct().collect()}, scheme_tag(nd), earlier)
    result = dedup_frames(files, nd, snapshot=run.snapshot, index=index)
    for name, df, key in (("files", result.kept, "id"), ("duplicates", result.duplicates, "removed_id"),
                          ("signatures", result.signatures, "id")):
        # Row groups sized from the task's memory budget, their size checked from the first row on (Parquet checks
        # after 100 rows by default: 100 files of 1 MB before it notices).
        (df.repartition(nd.output_partitions, key).sortWithinPartitions(key)
         .write.mode("overwrite").option("parquet.block.size", str(result.row_group_bytes))
         .option("parquet.page.size.row.check.min", "1").parquet(run.dataset_uri(name, for_spark=True)))
    kept_w = spark.read.parquet(run.dataset_uri("files", for_spark=True))
    kept = kept_w.agg(F.count("*"), F.sum("size_bytes")).first()
    result.metrics[OUT_BY_LANGUAGE] = {r["language"]: int(r["count"]) for r in
                                       kept_w.groupBy("language").count().orderBy("language").collect()}
    dups_w = spark.read.parquet(run.dataset_uri("duplicates", for_spark=True))
    result.metrics["clusters"] = summarise_spark(dups_w.select("level", F.col("removed_id").alias("removed"),
                                                               F.col("kept_id").alias("kept")), files)
    _record_stats(run, result.files_in, (kept[0], int(kept[1] or 0)), result.drops, result.metrics)
