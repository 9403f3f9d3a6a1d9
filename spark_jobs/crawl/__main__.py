"""Crawl a snapshot into the lake: ``python -m spark_jobs.crawl --snapshot 2026-10``.

Datasets committed under ``snapshot={id}/crawl/``: ``files`` (FILES), ``repos`` (REPOS), ``rejects`` (REJECTS: every
file that did not become a record, with its reason). Repositories are distributed over Spark executors.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

from pydantic import Field

from lake.cli import run_stage, stage_parser
from lake.config import REPO_ROOT, PlatformConfig, StrictModel
from lake.faults import FailureTally, check_failures
from lake.schemas import FILES, REJECTS, REPOS, to_spark_schema
from lake.stage import StageRun
from spark_jobs.crawl.file_rules import FileRules
from spark_jobs.session import spark_session

log = logging.getLogger("crawl")
STAGE = "crawl"


class CrawlConfig(StrictModel):
    # Where repositories come from: a local directory of repositories, or GitHub (GH Archive + REST API).
    source: Literal["local", "github"] = "local"
    # The local source's root (one folder per repository); relative paths are relative to the repository root.
    local_root: str = ".work/demo_source"
    # Output files per dataset (hash-partitioned by repository, so the layout is stable run to run).
    output_partitions: int = Field(4, ge=1)
    rules: FileRules = FileRules()
    # GitHub source settings (see spark_jobs.crawl.github).
    github: dict = {}


def crawl_local(run: StageRun, cfg: PlatformConfig, crawl_cfg: CrawlConfig) -> None:
    from pathlib import Path

    from pyspark import StorageLevel

    from spark_jobs.crawl.local_source import crawl_repository, list_repositories

    root = Path(crawl_cfg.local_root)
    root = root if root.is_absolute() else REPO_ROOT / root
    repos = [str(p) for p in list_repositories(root)]
    log.info("crawling %d repositories from %s", len(repos), root)
    spark = spark_session(cfg, f"crawl-{run.snapshot}")
    rules_json = crawl_cfg.rules.model_dump_json()
    records = (spark.sparkContext.parallelize(repos, max(1, min(len(repos), 64)))
               .flatMap(lambda d: crawl_repository(d, rules_json)))
    # Persisted: one pass over the source feeds three datasets (files, rejects, repos).
    records.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        outputs = {"files": FILES, "rejects": REJECTS, "repos": REPOS}
        frames = {}
        for name, schema in outputs.items():
            kind = {"files": "file", "rejects": "reject", "repos": "repo"}[name]
            rows = records.filter(lambda r, k=kind: r[0] == k).map(lambda r: r[1])
            df = spark.createDataFrame(rows, to_spark_schema(schema))
            order = ["repo", "path"] if name != "repos" else ["repo"]
            df = df.repartition(crawl_cfg.output_partitions, "repo").sortWithinPartitions(*order)
            df.write.mode("overwrite").parquet(run.dataset_uri(name, for_spark=True))
            frames[name] = spark.read.parquet(run.dataset_uri(name, for_spark=True))
        totals = frames["files"].agg({"size_bytes": "sum", "*": "count"}).collect()[0]
        n_files, n_bytes = int(totals["count(1)"]), int(totals["sum(size_bytes)"] or 0)
        drops = {r["reason"]: int(r["count"]) for r in frames["rejects"].groupBy("reason").count().collect()}
        rejected_bytes = int(frames["rejects"].agg({"size_bytes": "sum"}).collect()[0][0] or 0)
        by_lang = {r["language"]: int(r["count"]) for r in frames["files"].groupBy("language").count().collect()}
    finally:
        records.unpersist()
    run.stats.records_out = n_files
    run.stats.records_in = n_files + sum(drops.values())
    run.stats.bytes_out = n_bytes
    run.stats.bytes_in = n_bytes + rejected_bytes
    for reason, count in drops.items():
        run.stats.drop(reason, count)
    failed = FailureTally("crawl", items=n_files + sum(drops.values()) + len(repos),
                          failures=drops.get("crawl_error", 0))
    check_failures(STAGE, failed, cfg.item_failures)
    run.stats.metrics.update({"repositories": len(repos), "files_by_language": dict(sorted(by_lang.items())),
                              "source": str(root), "item_failures": failed.to_dict()})


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(STAGE, __doc__)

    def body(args, cfg: PlatformConfig) -> int:
        crawl_cfg = cfg.stage(STAGE, CrawlConfig)
        lake = cfg.open_lake()
        if crawl_cfg.source == "github":
            from spark_jobs.crawl.github.stage import crawl_github

            with StageRun(lake, args.snapshot, STAGE, resume=True) as run:
                crawl_github(run, cfg, crawl_cfg)
        else:
            with StageRun(lake, args.snapshot, STAGE) as run:
                crawl_local(run, cfg, crawl_cfg)
        print(f"crawl {args.snapshot}: committed {lake.storage.uri(lake.require(args.snapshot, STAGE).prefix)}")
        return 0

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    sys.exit(main())
