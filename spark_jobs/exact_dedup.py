"""Exact deduplication on SHA256, at repository level and then at file level.

``python -m spark_jobs.exact_dedup --snapshot 2026-10``

1. Repository level: a repository's fingerprint is the SHA256 of its sorted file SHA256s (what it contains, not where);
   of repositories with the same fingerprint (forks and copies), one is kept.
2. File level: of the remaining files with the same content SHA256, one is kept.
Which copy is kept: the shared keep rule (spark_jobs.keep_rule): most stars, then forks, then a permissive licence,
then the earliest repository; ties broken by repository, path and id, so the kept set is deterministic.

Datasets: ``files`` (kept FILES records) and ``duplicates`` (every removed file: id, repo, path, sha256, level,
kept_id, kept_repo).
"""

from __future__ import annotations

import sys

from pydantic import Field

from lake.cli import run_stage, stage_parser
from lake.config import PlatformConfig, StrictModel
from lake.stage import OUT_BY_LANGUAGE, StageRun
from spark_jobs.dedup_clusters import summarise_spark
from spark_jobs.keep_rule import keep_order
from spark_jobs.session import spark_session

STAGE = "exact_dedup"
REPO_ATTRS = ["stars", "forks", "license", "repo_created_at"]


class ExactDedupConfig(StrictModel):
    # The stage whose committed `files` dataset is deduplicated.
    input: str = "crawl"
    # Deduplicate whole repositories (identical file sets) before files.
    repository_level: bool = True
    output_partitions: int = Field(4, ge=1)


def dedup(files, repository_level: bool = True):
    """(kept files, duplicates) DataFrames. Pure transform: no I/O, tested on local[2] with inline frames."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if repository_level:
        repos = files.groupBy("repo").agg(
            F.sha2(F.concat_ws(",", F.array_sort(F.collect_list("sha256"))), 256).alias("repo_sha256"),
            *[F.max(c).alias(c) for c in REPO_ATTRS],
        ).withColumn("path", F.lit("")).withColumn("id", F.col("repo"))
        ranked = repos.withColumn("rank", F.row_number().over(
            Window.partitionBy("repo_sha256").orderBy(*keep_order())))
        winners = ranked.filter("rank = 1").select("repo_sha256", F.col("repo").alias("kept_repo"))
        repo_map = ranked.filter("rank > 1").select("repo", "repo_sha256").join(winners, "repo_sha256")
        # The file of the kept repository with the same content (smallest path) stands in for each removed file.
        stand_in = (files.join(winners.select(F.col("kept_repo").alias("repo")), "repo")
                    .groupBy(F.col("repo").alias("kept_repo"), "sha256")
                    .agg(F.min(F.struct("path", "id")).getField("id").alias("kept_id")))
        repo_dups = (files.join(repo_map.select("repo", "kept_repo"), "repo")
                     .join(stand_in, ["kept_repo", "sha256"], "left")
                     .select("id", "repo", "path", "sha256", F.lit("repo").alias("level"), "kept_id", "kept_repo"))
        files = files.join(repo_map.select("repo"), "repo", "left_anti")
    ranked = files.withColumn("rank", F.row_number().over(Window.partitionBy("sha256").orderBy(*keep_order())))
    first = ranked.filter("rank = 1").select("sha256", F.col("id").alias("kept_id"), F.col("repo").alias("kept_repo"))
    file_dups = (ranked.filter("rank > 1").join(first, "sha256")
                 .select("id", "repo", "path", "sha256", F.lit("file").alias("level"), "kept_id", "kept_repo"))
    kept = ranked.filter("rank = 1").drop("rank")
    duplicates = file_dups.unionByName(repo_dups) if repository_level else file_dups
    return kept, duplicates


def run_exact_dedup(run: StageRun, cfg: PlatformConfig, stage_cfg: ExactDedupConfig) -> None:
    from pyspark.sql import functions as F

    spark = spark_session(cfg, f"exact_dedup-{run.snapshot}")
    lake = run.lake
    files = spark.read.parquet(lake.dataset_uri(run.snapshot, stage_cfg.input, "files", for_spark=True))
    columns = files.columns
    kept, duplicates = dedup(files, stage_cfg.repository_level)
    (kept.select(*columns).repartition(stage_cfg.output_partitions, "repo").sortWithinPartitions("repo", "path")
     .write.mode("overwrite").parquet(run.dataset_uri("files", for_spark=True)))
    (duplicates.repartition(stage_cfg.output_partitions, "repo").sortWithinPartitions("repo", "path")
     .write.mode("overwrite").parquet(run.dataset_uri("duplicates", for_spark=True)))
    # Counts are read back from what was written, so the stats describe the committed data exactly.
    kept_w = spark.read.parquet(run.dataset_uri("files", for_spark=True))
    dups_w = spark.read.parquet(run.dataset_uri("duplicates", for_spark=True))
    n_in, bytes_in = files.agg(F.count("*"), F.sum("size_bytes")).first()
    n_out, bytes_out = kept_w.agg(F.count("*"), F.sum("size_bytes")).first()
    by_level = {r["level"]: int(r["count"]) for r in dups_w.groupBy("level").count().collect()}
    run.stats.records_in, run.stats.bytes_in = int(n_in), int(bytes_in or 0)
    run.stats.records_out, run.stats.bytes_out = int(n_out), int(bytes_out or 0)
    run.stats.drop("exact_duplicate_repo", by_level.get("repo", 0))
    run.stats.drop("exact_duplicate_file", by_level.get("file", 0))
    run.stats.metrics["duplicate_repositories"] = dups_w.filter("level = 'repo'").select("repo").distinct().count()
    run.stats.metrics[OUT_BY_LANGUAGE] = {r["language"]: int(r["count"]) for r in
                                          kept_w.groupBy("language").count().orderBy("language").collect()}
    repo_level = F.col("level") == "repo"
    pairs = dups_w.select("level", F.when(repo_level, F.col("repo")).otherwise(F.col("id")).alias("removed"),
                          F.when(repo_level, F.col("kept_repo")).otherwise(F.col("kept_id")).alias("kept"))
    run.stats.metrics["clusters"] = summarise_spark(pairs, files)
    run.stats.metrics["input"] = stage_cfg.input


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(STAGE, __doc__)

    def body(args, cfg: PlatformConfig) -> int:
        stage_cfg = cfg.stage(STAGE, ExactDedupConfig)
        lake = cfg.open_lake()
        lake.require(args.snapshot, stage_cfg.input)
        with StageRun(lake, args.snapshot, STAGE, params=stage_cfg.model_dump()) as run:
            run_exact_dedup(run, cfg, stage_cfg)
        print(f"exact_dedup {args.snapshot}: committed {lake.storage.uri(lake.require(args.snapshot, STAGE).prefix)}")
        return 0

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    sys.exit(main())
