"""The GitHub branch of the crawl stage: discover, select, fetch (on executors), assemble the snapshot.

1. **Period.** Snapshot ``YYYY-MM`` covers that calendar month, UTC: repositories are crawled at their last
   commit before the month's end.
2. **Discovery** (Spark, one task per hour of GH Archive): push events per repository in the period.
3. **Metadata and selection** (driver, ``max_concurrency`` threads against the REST API): stars, forks,
   licence, dates, the head SHA at the period's end, and for repositories that pass the cheap commit
   thresholds, the commit count.
4. **Fetch** (Spark, distributed by repository): tarballs into file records, clones into commit records,
   each through the lake's fetch cache.
5. **Assemble** (Spark): the cached per-repository results of the selected repositories, joined with this
   snapshot's metadata, into the ``files``, ``rejects``, ``repos`` and ``commits`` datasets.

Resume: discovery and selection are recorded as finished shards of the attempt (a re-run after a kill with
``resume=True`` reuses them), and fetched repositories are in the cache, so a re-run neither downloads
again nor duplicates records: the datasets are rewritten whole from the cache.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import add

from lake.config import ConfigError, ItemFailurePolicy, PlatformConfig
from lake.faults import FailureTally, check_failures
from lake.schemas import COMMITS, FILES, REJECTS, to_spark_schema
from lake.stage import StageRun
from spark_jobs.crawl.github.api import (
    EtagCache,
    GitHubClient,
    GitHubError,
    RateLimitExceeded,
    RepoMeta,
    token_from_environment,
)
from spark_jobs.crawl.github.config import GithubConfig
from spark_jobs.crawl.github.fetch import FetchSettings, fetch_partition, make_cache
from spark_jobs.crawl.github.fetch_cache import TARBALL_ENTRIES
from spark_jobs.crawl.github.gharchive import hour_names, scan_hour
from spark_jobs.crawl.github.select import needs_commit_count, select_for_commits, select_for_files
from spark_jobs.session import spark_session

log = logging.getLogger("crawl.github")


@dataclass(frozen=True)
class Period:
    label: str
    start: datetime
    end: datetime


def snapshot_period(snapshot: str) -> Period:
    """The calendar month a snapshot id names.

    >>> p = snapshot_period("2026-12"); (p.start.isoformat(), p.end.isoformat())
    ('2026-12-01T00:00:00+00:00', '2027-01-01T00:00:00+00:00')
    >>> snapshot_period("latest")
    Traceback (most recent call last):
    ...
    ValueError: snapshot 'latest' names no period: the GitHub source needs a monthly id YYYY-MM (e.g. 2026-10)
    """
    try:
        start = datetime.strptime(snapshot, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"snapshot {snapshot!r} names no period: the GitHub source needs a monthly id YYYY-MM "
                         f"(e.g. 2026-10)") from None
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return Period(snapshot, start, end)


def github_config(crawl_cfg) -> GithubConfig:
    from pydantic import ValidationError

    try:
        return GithubConfig.model_validate(crawl_cfg.github or {})
    except ValidationError as err:
        raise ConfigError(f"invalid configuration in stages.crawl.github:\n{err}") from None


# -- discovery -----------------------------------------------------------------------------------------
def discover(spark, gh: GithubConfig, period: Period, policy: ItemFailurePolicy) -> dict:
    """Push counts per active repository (most active first) and the status of every hourly file.

    A line that raised while being read is recorded (``failed_lines``); more than ``policy`` allows fails the step."""
    hours = hour_names(period.start, period.end)
    root, timeout = gh.gharchive_url, gh.api.timeout_s
    partitions = gh.discovery_partitions or 4 * spark.sparkContext.defaultParallelism
    scans = spark.sparkContext.parallelize(hours, min(len(hours), partitions)).map(
        lambda h: scan_hour(root, h, timeout_s=timeout))
    # Persisted: the scans feed both the per-hour report and the push counts; scanning twice means downloading twice.
    scans.persist()
    try:
        report = scans.map(lambda s: (s.hour, s.status, s.events, s.malformed, s.detail, s.lines, s.failed)).collect()
        pushes = (scans.flatMap(lambda s: list(s.pushes.items())).reduceByKey(add)
                  .filter(lambda kv: kv[1] >= gh.selection.min_push_events).collect())
    finally:
        scans.unpersist()
    bad = sorted(h for h, status, *_ in report if status != "ok")
    corrupt = sorted((h, detail) for h, status, _, _, detail, *_ in report if status == "corrupt")
    lines = FailureTally("discovery", items=sum(r[5] for r in report))
    for failure in sorted((f for r in report for f in r[6]), key=lambda f: f["item"]):
        lines.add(failure)
    check_failures("crawl", lines, policy)
    if len(bad) > gh.max_missing_hours:
        raise FileNotFoundError(f"GH Archive at {root}: {len(bad)} of {len(hours)} hourly files of {period.label} are "
                                f"missing or corrupt (max_missing_hours={gh.max_missing_hours}); first: {bad[:5]}")
    candidates = sorted(pushes, key=lambda kv: (-kv[1], kv[0]))
    if gh.selection.max_repos:
        candidates = candidates[: gh.selection.max_repos]
    statuses = Counter(status for _, status, *_ in report)
    log.info("discovery %s: %d hours (%s), %d active repositories", period.label, len(hours), dict(statuses),
             len(candidates))
    return {"candidates": candidates, "hours": dict(statuses), "corrupt_hours": corrupt[:100],
            "events": sum(r[2] for r in report), "malformed_lines": sum(r[3] for r in report),
            "failed_lines": lines.to_dict()}


# -- metadata and selection ------------------------------------------------------------------------------
def _meta_json(meta: RepoMeta) -> dict:
    return {"repo": meta.full_name, "stars": meta.stars, "forks": meta.forks, "license": meta.license,
            "created_at": meta.created_at.isoformat() if meta.created_at else None, "clone_url": meta.clone_url}


def select_repositories(client: GitHubClient, gh: GithubConfig, period: Period,
                        candidates: list[tuple[str, int]]) -> dict:
    """Metadata, head SHA and commit eligibility of each candidate; repositories that are crawled, with why not."""

    def one(candidate: tuple[str, int]) -> dict:
        try:
            return decide(*candidate)
        except RateLimitExceeded:
            raise  # the whole step waits for a later run (which resumes), rather than dropping everyone
        except GitHubError as err:
            log.warning("%s: %s", candidate[0], err)
            return {"repo": candidate[0], "reason": "api_error"}

    def decide(name: str, pushes: int) -> dict:
        meta = client.repo(name)
        if meta is None:
            return {"repo": name, "reason": "repo_unavailable"}
        keep, reason = select_for_files(meta, pushes, gh.selection)
        if not keep:
            return {"repo": name, "reason": reason}
        head = client.head_before(meta.full_name, meta.default_branch, period.end)
        if head is None:
            return {"repo": name, "reason": "no_commit_before_period_end"}
        commits, commit_reason = False, "commits_disabled"
        if gh.crawl_commits:
            count = client.commit_count(meta.full_name, head) if needs_commit_count(meta, gh.selection,
                                                                                    period.end) else 0
            commits, commit_reason = select_for_commits(meta, count, gh.selection, period.end)
        return {"repo": name, "reason": "selected", "sha": head, "commits": commits,
                "commit_reason": commit_reason, "pushes": pushes, **_meta_json(meta)}

    with ThreadPoolExecutor(max_workers=gh.api.max_concurrency, thread_name_prefix="github-api") as pool:
        results = list(pool.map(one, candidates))
    selected = [r for r in results if r["reason"] == "selected"]
    reasons = Counter(r["reason"] for r in results)
    reasons.update(r["commit_reason"] for r in selected)
    log.info("selection %s: %d of %d repositories selected, %d commit-eligible; %s", period.label, len(selected),
             len(results), sum(r["commits"] for r in selected), dict(reasons))
    return {"selected": selected, "reasons": dict(sorted(reasons.items())), "api": dict(client.counters)}


# -- the stage -----------------------------------------------------------------------------------------
def _cached_step(run: StageRun, shard: str, compute) -> dict:
    """A driver step whose JSON result is kept as a finished shard, so a resumed attempt does not redo it."""
    if run.shard_done(shard):
        log.info("resuming: %s already done in attempt %s", shard, run.attempt)
        return run.shard_info(shard)
    result = compute()
    run.mark_shard_done(shard, result)
    return result


def fetch_all(spark, cfg: PlatformConfig, gh: GithubConfig, rules_json: str, period: Period,
              selected: list[dict], token: str | None) -> list[dict]:
    jobs = [("tarball", r["repo"], r["sha"], r["clone_url"]) for r in selected]
    jobs += [("commits", r["repo"], r["sha"], r["clone_url"]) for r in selected if r["commits"]]
    jobs.sort()
    if not jobs:
        return []
    settings = FetchSettings(github=gh.model_dump_json(), rules=rules_json, lake_root=cfg.lake_root(),
                             s3_endpoint_url=cfg.lake.s3_endpoint_url, s3_region=cfg.lake.s3_region,
                             period_start=period.start.isoformat(), period_end=period.end.isoformat(),
                             period=period.label, token=token).to_json()
    partitions = gh.fetch_partitions or 4 * spark.sparkContext.defaultParallelism
    rdd = spark.sparkContext.parallelize(jobs, max(1, min(len(jobs), partitions)))
    return rdd.mapPartitions(lambda it: fetch_partition(it, settings)).collect()


def check_fetch_failures(outcomes: list[dict], policy: ItemFailurePolicy) -> dict:
    """Repositories whose job raised, and commits that failed alone, against the cap; their tallies for the stats."""
    repos = FailureTally("fetch", items=len(outcomes))
    commits = FailureTally("commits")
    for o in outcomes:
        if o.get("error_type"):
            repos.add({"item": f"{o['kind']} {o['repo']}", "reason": o["reason"], "error_type": o["error_type"],
                       "detail": o["detail"]})
        if o["kind"] == "commits":
            commits.items += o["records"] + len(o.get("item_failures") or [])
            for f in o.get("item_failures") or []:
                commits.add({"item": f"{f['repo']} {f['path']}", "reason": f["reason"],
                             "error_type": f["detail"].split(":", 1)[0], "detail": f["detail"]})
    check_failures("crawl", repos, policy)
    check_failures("crawl", commits, policy)
    return {"repositories": repos.to_dict(), "commits": commits.to_dict()}


def _frame(spark, schema, uris: list[str]):
    """Cached per-repository parquet files as one DataFrame (an empty one with the schema when there are none)."""
    if uris:
        return spark.read.schema(to_spark_schema(schema)).parquet(*uris)
    return spark.createDataFrame([], to_spark_schema(schema))


@contextmanager
def utc_microsecond_timestamps(spark):
    """Write timestamps as Parquet TIMESTAMP_MICROS (UTC), the lake schemas' ``timestamp[us, tz=UTC]``.

    Spark's default, INT96, reads back in pyarrow as a zone-less nanosecond timestamp. Scoped to this stage's
    writes, so a shared session keeps its setting.
    """
    key = "spark.sql.parquet.outputTimestampType"
    previous = spark.conf.get(key)
    spark.conf.set(key, "TIMESTAMP_MICROS")
    try:
        yield
    finally:
        spark.conf.set(key, previous)


def assemble(spark, run: StageRun, storage, selected: list[dict], outcomes: list[dict], partitions: int) -> dict:
    """Write files / rejects / repos / commits of this snapshot from the cache; returns counts for the stats."""
    from pyspark.sql import functions as F

    tarball_keys = sorted(o["key"] for o in outcomes if o["kind"] == "tarball" and o["key"])
    commit_keys = sorted(o["key"] for o in outcomes if o["kind"] == "commits" and o["key"])
    meta_rows = [(r["repo"], r["license"], r["stars"], r["forks"],
                  datetime.fromisoformat(r["created_at"]) if r["created_at"] else None, r["clone_url"])
                 for r in selected]
    meta = spark.createDataFrame(meta_rows, "repo string, license string, stars long, forks long, "
                                            "repo_created_at timestamp, source string")
    entries = _frame(spark, TARBALL_ENTRIES, [storage.uri(k, for_spark=True) for k in tarball_keys])
    files = (entries.where(F.col("kind") == "file").join(meta, "repo")
             .withColumn("id", F.sha2(F.concat_ws("\0", "repo", "commit", "path"), 256))
             .select(*FILES.names))
    failures = [(o["repo"], "", o["reason"], o["detail"], o["compressed_bytes"])
                for o in outcomes if o["status"] == "failed"]
    failures += [(f["repo"], f["path"], f["reason"], f["detail"], f["size_bytes"])
                 for o in outcomes for f in o.get("item_failures") or []]
    rejects = (entries.where(F.col("kind") == "reject")
               .select("repo", "path", "reason", "detail", "size_bytes")
               .unionByName(spark.createDataFrame(failures, to_spark_schema(REJECTS))))
    frames = {"files": (files, ["repo", "path"]), "rejects": (rejects, ["repo", "path", "reason"])}
    for name, (df, order) in frames.items():
        (df.repartition(partitions, "repo").sortWithinPartitions(*order)
         .write.mode("overwrite").parquet(run.dataset_uri(name, for_spark=True)))
    written = spark.read.parquet(run.dataset_uri("files", for_spark=True))
    per_repo = written.groupBy("repo", "commit").agg(F.count("*").alias("num_files"),
                                                     F.sum("size_bytes").alias("size_bytes"))
    repos = (per_repo.join(meta, "repo")
             .select("repo", "commit", "license", "stars", "forks", "repo_created_at", "num_files", "size_bytes",
                     "source"))
    repos.repartition(1).sortWithinPartitions("repo").write.mode("overwrite").parquet(
        run.dataset_uri("repos", for_spark=True))
    commits = _frame(spark, COMMITS, [storage.uri(k, for_spark=True) for k in commit_keys])
    (commits.repartition(partitions, "repo").sortWithinPartitions("repo", "sha")
     .write.mode("overwrite").parquet(run.dataset_uri("commits", for_spark=True)))
    rejected = spark.read.parquet(run.dataset_uri("rejects", for_spark=True))
    by_language = written.groupBy("language").agg(F.count("*").alias("n"), F.sum("size_bytes").alias("b")).collect()
    by_reason = rejected.groupBy("reason").agg(F.count("*").alias("n"), F.sum("size_bytes").alias("b")).collect()
    return {
        "files": sum(int(r["n"]) for r in by_language), "file_bytes": sum(int(r["b"] or 0) for r in by_language),
        "drops": {r["reason"]: int(r["n"]) for r in by_reason},
        "rejected_bytes": sum(int(r["b"] or 0) for r in by_reason),
        "by_language": {r["language"]: int(r["n"]) for r in by_language},
        "commits": spark.read.parquet(run.dataset_uri("commits", for_spark=True)).count(),
    }


def crawl_github(run: StageRun, cfg: PlatformConfig, crawl_cfg) -> None:
    gh = github_config(crawl_cfg)
    period = snapshot_period(run.snapshot)
    lake = run.lake
    spark = spark_session(cfg, f"crawl-github-{run.snapshot}")
    discovery = _cached_step(run, "discovery", lambda: discover(spark, gh, period, cfg.item_failures))
    token = token_from_environment(gh.api)
    client = GitHubClient(gh.api, token=token, etags=EtagCache(lake.storage, f"{gh.cache_prefix}/etags"))
    try:
        selection = _cached_step(run, "selection", lambda: select_repositories(
            client, gh, period, [tuple(c) for c in discovery["candidates"]]))
    finally:
        client.close()
    selected = selection["selected"]
    rules_json = crawl_cfg.rules.model_dump_json()
    log.info("fetching %d repositories (%d with commits)", len(selected), sum(r["commits"] for r in selected))
    outcomes = fetch_all(spark, cfg, gh, rules_json, period, selected, token)
    faults = check_fetch_failures(outcomes, cfg.item_failures)
    cache = make_cache(lake.storage, gh, crawl_cfg.rules)
    log.info("fetch cache %s: %s", lake.storage.uri(cache.prefix),
             dict(Counter((o["kind"], o["status"]) for o in outcomes)))
    failed = {o["repo"] for o in outcomes if o["kind"] == "tarball" and o["status"] == "failed"}
    kept = [r for r in selected if r["repo"] not in failed]
    with utc_microsecond_timestamps(spark):
        counts = assemble(spark, run, lake.storage, kept, outcomes, crawl_cfg.output_partitions)

    run.stats.records_out = counts["files"]
    run.stats.records_in = counts["files"] + sum(counts["drops"].values())
    run.stats.bytes_out = counts["file_bytes"]
    run.stats.bytes_in = counts["file_bytes"] + counts["rejected_bytes"]
    for reason, n in counts["drops"].items():
        run.stats.drop(reason, n)
    fetched = [o for o in outcomes if o["kind"] == "tarball"]
    downloaded = [o for o in fetched if o["status"] == "downloaded"]
    seconds = sum(o["seconds"] for o in downloaded)
    mbytes = sum(o["compressed_bytes"] for o in fetched) / 1e6
    run.stats.metrics.update({
        "source": "github", "period": [period.start.isoformat(), period.end.isoformat()],
        "gharchive": {k: discovery.get(k) for k in ("hours", "corrupt_hours", "events", "malformed_lines",
                                                    "failed_lines")},
        "repositories": {"active": len(discovery["candidates"]), "selected": len(selected),
                         "fetched": len(downloaded), "from_cache": sum(o["status"] == "cached" for o in fetched),
                         "failed": len(failed), "selection": selection["reasons"]},
        "commits": {"repositories": sum(r["commits"] for r in selected), "records": counts["commits"],
                    "failed": sum(o["kind"] == "commits" and o["status"] == "failed" for o in outcomes)},
        "fetch": {"downloaded_mb": round(mbytes, 3), "task_seconds": round(seconds, 3),
                  "files_per_task_s": round(sum(o["records"] for o in downloaded) / seconds, 1) if seconds else None},
        "api": selection["api"],
        "item_failures": faults,
        "files_by_language": dict(sorted(counts["by_language"].items())),
    })
