"""Stage ``release``: cut a named, immutable training corpus from the curated files of many snapshots (Spark).

Reads, for each included snapshot, the committed ``files`` of the input stage (``quality_filter``), the crawl's
``files`` (for each repository's newest state) and ``commits``, and the ``score`` stage's ``scores``; writes under
``release={name}/release/`` the datasets ``files`` (:data:`lake.release.RELEASE_FILES`), ``commits`` (redacted and
decontaminated commit samples) and ``scores``, and ``manifest.json`` (:mod:`lake.release`). A name that is
already committed is refused; a killed cut leaves nothing committed and may be run again.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime

from pydantic import Field

from lake import release as rel
from lake import tokens
from lake.config import PlatformConfig, StrictModel
from lake.stage import Lake, StageRun

log = logging.getLogger(__name__)
STAGE = rel.STAGE


class ReleaseConfig(StrictModel):
    """``stages.release`` in the profile YAML: where a cut reads each snapshot's data."""

    # The stage whose committed ``files`` are a snapshot's curated corpus (another stage cuts an ablation corpus:
    # e.g. pii_redact, the curated files without the quality filter).
    input_stage: str = "quality_filter"
    # The crawl stage: each repository's raw state per snapshot (newest versions) and its commits.
    crawl_stage: str = "crawl"
    # The stage with ``scores`` (id, score) for the dataset build's repository selection; skipped when absent.
    scores_stage: str | None = "score"
    # Include the crawl's commits as commit samples (redacted, decontaminated).
    commits: bool = True
    # Secret/PII kinds redacted in commit samples (spark_jobs.filters.pii.KINDS; files were redacted by pii_redact).
    redact_kinds: tuple[str, ...] = ("private_key", "aws_access_key", "aws_secret_key", "github_token",
                                     "slack_token", "stripe_key", "google_api_key", "jwt", "keyword_secret",
                                     "email", "ip_address")
    # Drop commit samples sharing a word n-gram with the evaluation sets (stages.decontaminate.eval_sets).
    decontaminate: bool = True
    # Parquet parts per dataset (rows hash-partitioned by repository and sorted: a deterministic layout).
    output_partitions: int = Field(8, ge=1)


def select_snapshots(lake: Lake, input_stage: str, snapshots: list[str] | None, up_to: str | None) -> list[str]:
    """The snapshots of the cut, in order: the given list, or every snapshot up to ``up_to`` (inclusive).

    Every given snapshot must have its input stage committed. "Up to" refuses a gap: an earlier snapshot that was
    crawled but whose input stage is not committed would silently be missing from the corpus.
    """
    if (snapshots is None) == (up_to is None):
        raise ValueError("give the snapshots of the release (--snapshots A,B) or --up-to X, not both or neither")
    if snapshots is not None:
        missing = [s for s in snapshots if lake.commit_info(s, input_stage) is None]
        if missing:
            raise ValueError(f"snapshot(s) {missing} have no committed {input_stage}: curate them first "
                             f"(or cut from another input stage)")
        return sorted(snapshots)
    found, gaps = [], []
    for s in lake.snapshots():
        if s > up_to:
            continue
        if lake.commit_info(s, input_stage) is not None:
            found.append(s)
        elif lake.commit_info(s, "crawl") is not None:
            gaps.append(s)
    if gaps:
        raise ValueError(f"snapshot(s) {gaps} up to {up_to!r} were crawled but have no committed {input_stage}: "
                         f"finish them, or name the snapshots explicitly with --snapshots")
    if not found:
        raise ValueError(f"no snapshot up to {up_to!r} has a committed {input_stage}")
    return found


def tokenizer_sha256(lake: Lake, name: str) -> str:
    return hashlib.sha256(tokens.tokenizer_json(lake, rel.partition(name)).encode()).hexdigest()


def tokenizer_ref(lake: Lake, name: str, policy: str, source: str | None, base: str | None) -> rel.TokenizerRef:
    if policy == "train":
        if source:
            raise ValueError("--tokenizer-from only applies to --tokenizer pin")
        return rel.TokenizerRef(policy="train", release=name)
    source = source or base
    if not source:
        raise ValueError("--tokenizer pin needs the release to pin from: --tokenizer-from NAME or --base NAME")
    rel.read_manifest(lake, source)
    if lake.commit_info(rel.partition(source), tokens.STAGE) is None:
        raise ValueError(f"release {source!r} has no committed tokenizer to pin: run its dataset DAG first")
    return rel.TokenizerRef(policy="pin", release=source, sha256=tokenizer_sha256(lake, source))


def base_release(lake: Lake, base: str | None) -> rel.BaseRelease | None:
    if not base:
        return None
    rel.read_manifest(lake, base)
    has_tokenizer = lake.commit_info(rel.partition(base), tokens.STAGE) is not None
    return rel.BaseRelease(name=base, model=rel.model_uri(lake, base),
                           tokenizer_sha256=tokenizer_sha256(lake, base) if has_tokenizer else None)


def snapshot_entry(lake: Lake, snapshot: str, cfg: ReleaseConfig) -> rel.SnapshotEntry:
    info = lake.require(snapshot, cfg.input_stage)
    metrics = info.stats.get("metrics") or {}
    scorer = None
    if "threshold_mode" in metrics:
        scorer = rel.ScorerUse(version=metrics.get("scorer_version"), threshold=metrics.get("threshold"),
                               threshold_mode=metrics.get("threshold_mode"))
    crawl = lake.commit_info(snapshot, cfg.crawl_stage)
    files = crawl.attempt if crawl and "files" in crawl.datasets else None
    commits = crawl.attempt if crawl and "commits" in crawl.datasets and cfg.commits else None
    return rel.SnapshotEntry(snapshot=snapshot, stage=cfg.input_stage, attempt=info.attempt,
                             committed_at=info.committed_at, files=int(info.stats.get("records_out") or 0),
                             scorer=scorer, crawl_attempt=files, commits_attempt=commits)


def cut(run: StageRun, cfg: PlatformConfig, stage_cfg: ReleaseConfig, *, snapshots: list[str],
        entries: list[rel.SnapshotEntry], tokenizer: rel.TokenizerRef, base: rel.BaseRelease | None) -> rel.Manifest:
    """Write the release's datasets and manifest into ``run`` (the caller commits)."""
    from functools import reduce

    from pyspark.sql import functions as F

    from lake.schemas import FILES
    from spark_jobs.release.versions import flag_files, repo_level_counts
    from spark_jobs.session import spark_session

    lake, name = run.lake, run.partition.name
    spark = spark_session(cfg, f"release-{name}")

    def union(frames):
        return reduce(lambda a, b: a.unionByName(b), frames)

    curated = union([spark.read.parquet(lake.dataset_uri(s, stage_cfg.input_stage, "files", for_spark=True))
                     .select(*FILES.names).withColumn("snapshot", F.lit(s)) for s in snapshots])
    raw = []
    for entry in entries:
        if entry.crawl_attempt:
            raw.append(spark.read.parquet(lake.dataset_uri(entry.snapshot, stage_cfg.crawl_stage, "files",
                                                           for_spark=True))
                       .select(F.lit(entry.snapshot).alias("snapshot"), "id", "repo", "path", "sha256"))
        else:
            log.warning("snapshot %s has no committed %s: its curated files stand in for its repository state",
                        entry.snapshot, stage_cfg.crawl_stage)
            raw.append(curated.filter(F.col("snapshot") == entry.snapshot)
                       .select("snapshot", "id", "repo", "path", "sha256"))
    crawl = union(raw)
    flagged = flag_files(curated, crawl).select(*rel.RELEASE_FILES.names)
    files_uri = run.dataset_uri("files", for_spark=True)
    (flagged.repartition(stage_cfg.output_partitions, "repo").sortWithinPartitions("repo", "path", "snapshot")
     .write.mode("overwrite").parquet(files_uri))
    written = spark.read.parquet(files_uri)
    totals = curated.agg(F.count("*").alias("n"), F.sum("size_bytes").alias("b")).first()
    out = written.agg(F.count("*").alias("n"), F.sum(F.col("file_level").cast("int")).alias("file_level"),
                      F.sum(F.when(F.col("file_level"), F.col("size_bytes")).otherwise(0)).alias("b")).first()
    counts = {"files": int(out["n"]), "file_level": int(out["file_level"] or 0),
              **repo_level_counts(written, crawl)}
    run.stats.records_in, run.stats.bytes_in = int(totals["n"]), int(totals["b"] or 0)
    run.stats.records_out, run.stats.bytes_out = counts["file_level"], int(out["b"] or 0)
    # A curated file left out of both views: same content already taken from an earlier snapshot, and not part
    # of its repository's newest state.
    run.stats.drop("duplicate_across_snapshots", int(totals["n"]) - counts["files"])

    counts["commits"] = _commits(run, spark, cfg, stage_cfg, entries)
    counts["scores"] = _scores(run, spark, stage_cfg, snapshots)
    config = stage_cfg.model_dump(mode="json")
    manifest = rel.Manifest(name=name, created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                            input_stage=stage_cfg.input_stage, snapshots=entries, tokenizer=tokenizer,
                            base_release=base, config=config, config_sha256=rel.config_sha256(config),
                            counts=counts)
    run.write_bytes(rel.MANIFEST, manifest.to_json().encode())
    run.stats.metrics.update({"snapshots": snapshots, "counts": counts, "tokenizer": tokenizer.model_dump(),
                              "base_release": base.name if base else None, "input_stage": stage_cfg.input_stage,
                              "manifest": lake.storage.uri(f"{run.attempt_prefix}/{rel.MANIFEST}")})
    return manifest


def _commits(run: StageRun, spark, cfg: PlatformConfig, stage_cfg: ReleaseConfig,
             entries: list[rel.SnapshotEntry]) -> int:
    """Commit samples of every included snapshot: unique by (repo, sha), earliest snapshot first; redacted;
    contaminated ones dropped. Returns the number written."""
    from functools import reduce

    import pyarrow as pa
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from lake.schemas import COMMITS, to_spark_schema
    from spark_jobs.release.commit_samples import clean_batches

    sources = [e.snapshot for e in entries if e.commits_attempt]
    lake = run.lake
    if not sources:
        run.write_table("commits", rel.RELEASE_COMMITS.empty_table(), "empty")
        return 0
    frames = [spark.read.parquet(lake.dataset_uri(s, stage_cfg.crawl_stage, "commits", for_spark=True))
              .select(*COMMITS.names).withColumn("snapshot", F.lit(s)) for s in sources]
    commits = reduce(lambda a, b: a.unionByName(b), frames)
    first = F.row_number().over(Window.partitionBy("repo", "sha").orderBy("snapshot")) == 1
    ranked = commits.withColumn("first", first)
    duplicates = ranked.filter(~F.col("first")).count()
    unique = ranked.filter("first").drop("first")
    index_bytes = None
    if stage_cfg.decontaminate:
        from lake.ngrams import EvalNgramIndex

        index_bytes = EvalNgramIndex.from_config(cfg).to_bytes()
    cleaned_schema = pa.schema(list(rel.RELEASE_COMMITS) + [
        pa.field("contamination", pa.string()), pa.field("redactions", pa.map_(pa.string(), pa.int64()))])
    kinds = tuple(stage_cfg.redact_kinds)
    cleaned = unique.mapInArrow(lambda batches: clean_batches(batches, cleaned_schema, index_bytes, kinds),
                                to_spark_schema(cleaned_schema))
    uri = run.dataset_uri("commits", for_spark=True)
    # The clean pass runs once: its output is written with the two counting columns and read back for the stats.
    staged = run.storage.uri(f"{run.attempt_prefix}/_tmp/commits_cleaned", for_spark=True)
    cleaned.write.mode("overwrite").parquet(staged)
    done = spark.read.parquet(staged)
    (done.filter(F.col("contamination").isNull()).select(*rel.RELEASE_COMMITS.names)
     .repartition(stage_cfg.output_partitions, "repo").sortWithinPartitions("repo", "sha")
     .write.mode("overwrite").parquet(uri))
    contaminated = done.filter(F.col("contamination").isNotNull()).count()
    redactions = {r["key"]: int(r["n"]) for r in
                  done.select(F.explode("redactions")).groupBy("key").agg(F.sum("value").alias("n")).collect()}
    run.storage.delete_prefix(f"{run.attempt_prefix}/_tmp")
    written = spark.read.parquet(uri).count()
    run.stats.drop("duplicate_commit", duplicates)
    run.stats.drop("contaminated_commit", contaminated)
    run.stats.metrics["commit_redactions"] = dict(sorted(redactions.items()))
    log.info("commit samples: %d kept, %d contaminated, %d duplicates, redactions %s", written, contaminated,
             duplicates, redactions)
    return written


def _scores(run: StageRun, spark, stage_cfg: ReleaseConfig, snapshots: list[str]) -> int:
    from functools import reduce

    from pyspark.sql import functions as F

    lake = run.lake
    sources = [s for s in snapshots if stage_cfg.scores_stage
               and (info := lake.commit_info(s, stage_cfg.scores_stage)) and "scores" in info.datasets]
    if not sources:
        run.write_table("scores", rel.RELEASE_SCORES.empty_table(), "empty")
        return 0
    from pyspark.sql import Window

    frames = [spark.read.parquet(lake.dataset_uri(s, stage_cfg.scores_stage, "scores", for_spark=True))
              .select("id", F.col("score").cast("float"), F.lit(s).alias("snapshot")) for s in sources]
    # A file id scored in two snapshots (a repository unchanged at the same commit) keeps its newest score.
    newest = F.row_number().over(Window.partitionBy("id").orderBy(F.col("snapshot").desc())) == 1
    scores = reduce(lambda a, b: a.unionByName(b), frames).withColumn("newest", newest).filter("newest").drop("newest")
    uri = run.dataset_uri("scores", for_spark=True)
    scores.repartition(stage_cfg.output_partitions, "id").sortWithinPartitions("id").write.mode("overwrite").parquet(uri)
    return spark.read.parquet(uri).count()


def cut_release(cfg: PlatformConfig, name: str, *, snapshots: list[str] | None = None, up_to: str | None = None,
                base: str | None = None, tokenizer: str = "train", tokenizer_from: str | None = None) -> rel.Manifest:
    """Check everything, then cut and commit release ``name``; returns its manifest."""
    stage_cfg = cfg.stage(STAGE, ReleaseConfig)
    lake = cfg.open_lake()
    rel.refuse_existing(lake, name)
    chosen = select_snapshots(lake, stage_cfg.input_stage, snapshots, up_to)
    base_ref = base_release(lake, base)
    tok = tokenizer_ref(lake, name, tokenizer, tokenizer_from, base)
    entries = [snapshot_entry(lake, s, stage_cfg) for s in chosen]
    log.info("cutting release %s from %s (%s), tokenizer %s, base %s", name, chosen, stage_cfg.input_stage,
             tok.model_dump(), base)
    with StageRun(lake, rel.partition(name), STAGE, params={"snapshots": chosen, "base_release": base,
                                                            "tokenizer": tok.model_dump()}) as run:
        manifest = cut(run, cfg, stage_cfg, snapshots=chosen, entries=entries, tokenizer=tok, base=base_ref)
        rel.refuse_existing(lake, name)  # a concurrent cut of the same name committed meanwhile
    return manifest
