"""Stage ``dataset_build``: turn a release into packed token shards per source, on Spark.

    python -m spark_jobs.dataset.build --release 2026-q3

Reads the release's ``files``, ``scores`` and ``commits`` (stage ``release``, lake/release.py) and its committed
``tokenizer``.

1. Documents. ``file_level``: every file-level file of the release is one document (its content).
   ``repo_level``: each repository at its newest version across the release's snapshots (the rows flagged
   ``repo_level``), if it has at least ``repo_min_files`` files, selected by mean file quality score when the
   release has scores, concatenated in dependency order (:mod:`spark_jobs.dataset.repo_concat`) and split at
   the context budget. ``commits``: one sample per commit sample of the release
   (:mod:`spark_jobs.dataset.commits`); empty, but still indexed, when there is none.
2. Decontamination (:mod:`spark_jobs.dataset.decontaminate`): a document sharing a word 10-gram with an
   evaluation set is dropped; files are checked before they are concatenated, so one contaminated file does
   not cost its whole repository, and the final repository and commit documents are checked again.
3. FIM (SPM, per source rate), tokenization with the committed tokenizer and packing into fixed-length rows
   (:mod:`spark_jobs.dataset.packing`, :mod:`lake.token_shards`), in parallel groups ``(source, part)``.
4. The index ``token_index.json``; tokens, documents and FIM counts per source in ``_stats.json``.

Deterministic for a seed: group membership and order come from seeded hashes of document ids, never from
Spark's partitioning. A killed build re-run with ``resume`` skips the groups it finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys

from pydantic import Field

from lake import release as rel
from lake.cli import run_stage, stage_parser
from lake.config import PlatformConfig, StrictModel
from lake.faults import FailureTally, check_failures
from lake.stage import Lake, Partition, StageRun
from lake.token_shards import SOURCES, build_index, write_index
from lake.tokens import BOS, EOS, PAD, SPECIAL_IDS, tokenizer_json
from spark_jobs.dataset import packing

log = logging.getLogger(__name__)

STAGE = "dataset_build"


class SeqLens(StrictModel):
    """Row length per source: 8K for regular pretraining, 32K for the long-context phase."""

    file_level: int = Field(8192, ge=16)
    repo_level: int = Field(32768, ge=16)
    commits: int = Field(32768, ge=16)


class FimRates(StrictModel):
    """FIM rate per source: 0.5 in regular pretraining (file level), 0.1 in continued pretraining."""

    file_level: float = Field(0.5, ge=0.0, le=1.0)
    repo_level: float = Field(0.1, ge=0.0, le=1.0)
    # A commit sample is an input -> target pair; rearranging it would break that, so no FIM by default.
    commits: float = Field(0.0, ge=0.0, le=1.0)


class AlignDocs(StrictModel):
    """Per source: start a document on a new row when it would not fit in the current one (padding the rest).

    Regular pretraining concatenates freely; repository and commit documents are long-context material whose
    point is to be seen whole, so they are never cut when they fit in a row.
    """

    file_level: bool = False
    repo_level: bool = True
    commits: bool = True


class DatasetBuildConfig(StrictModel):
    """``stages.dataset_build`` in the profile YAML."""

    # Stage of the release whose committed ``files`` (RELEASE_FILES), ``scores`` (id, score: repository
    # selection) and ``commits`` (commit samples) are the corpus; a missing scores or commits dataset is skipped.
    input: str = rel.STAGE
    # Stage of the release with its tokenizer (trained for it or pinned from an earlier release).
    tokenizer_stage: str = "tokenizer"
    seed: int = 0
    seq_len: SeqLens = SeqLens()
    fim_rate: FimRates = FimRates()
    align: AlignDocs = AlignDocs()
    # Parallel groups per source; each group packs into its own shards (fixes the output, unlike executors).
    parts: int = Field(8, ge=1, le=4096)
    # Tokens per shard file (rounded down to whole rows); 64M tokens = 256 MiB of uint32.
    shard_tokens: int = Field(1 << 26, ge=16)
    # Prepend bos to every document (the released tokenizer does not add it; eos always ends a document).
    add_bos: bool = False
    # Token budget of one repository document; default: the repo_level row length.
    repo_budget_tokens: int | None = Field(None, ge=16)
    repo_min_files: int = Field(2, ge=1)
    # Repositories with more text than this (characters) get no repository-level document (executor memory).
    repo_max_chars: int = Field(256_000_000, ge=1)
    # Keep this fraction of repositories, best mean file score first, when scores exist (the report gives no number).
    repo_keep_fraction: float = Field(0.5, gt=0.0, le=1.0)
    max_parse_bytes: int = Field(512_000, ge=1)
    commit_readme_chars: int = Field(8_000, ge=0)
    commit_tree_chars: int = Field(8_000, ge=0)
    commit_file_chars: int = Field(16_000, ge=0)
    commit_top_files: int = Field(5, ge=0)
    decontaminate: bool = True
    # Adopt the newest uncommitted attempt of a killed run and skip its finished groups.
    resume: bool = True

    def fingerprint(self) -> str:
        """What decides the output bytes, to refuse resuming an attempt built with another config."""
        return hashlib.sha256(json.dumps(self.model_dump(exclude={"resume"}), sort_keys=True).encode()).hexdigest()


def _has(lake: Lake, part: Partition, stage: str, dataset: str) -> bool:
    info = lake.commit_info(part, stage)
    return info is not None and dataset in info.datasets and bool(info.datasets[dataset])


def assign_groups(docs, *, seed: int, parts: int):
    """Add ``part`` and ``order`` from seeded hashes of the document id (independent of Spark partitioning)."""
    from pyspark.sql import functions as F

    return (docs.withColumn("part", F.pmod(F.xxhash64(F.lit(seed), F.col("source"), F.col("doc_id")),
                                           F.lit(parts)).cast("int"))
            .withColumn("order", F.xxhash64(F.lit(seed + 1), F.col("doc_id"))))


def build(run: StageRun, cfg: PlatformConfig, stage_cfg: DatasetBuildConfig) -> dict:
    from pyspark.sql import functions as F

    from spark_jobs.dataset import sources
    from spark_jobs.session import spark_session

    lake, release = run.lake, run.partition
    spark = spark_session(cfg, f"dataset_build-{release.name}")
    fingerprint = stage_cfg.fingerprint()
    if run.shard_done("config") and run.shard_info("config").get("fingerprint") != fingerprint:
        log.warning("attempt %s was built with another config: starting it over", run.attempt)
        run.storage.delete_prefix(run.attempt_prefix)
    run.mark_shard_done("config", {"fingerprint": fingerprint})

    tok_json = tokenizer_json(lake, release, stage_cfg.tokenizer_stage)
    files = spark.read.parquet(lake.dataset_uri(release, stage_cfg.input, "files", for_spark=True))
    scores, commits = (spark.read.parquet(lake.dataset_uri(release, stage_cfg.input, name, for_spark=True))
                       if _has(lake, release, stage_cfg.input, name) else None for name in ("scores", "commits"))
    if scores is not None and not scores.take(1):
        scores = None  # a release without scores (its snapshots were not scored): no selection by score

    eval_index = None
    if stage_cfg.decontaminate:
        from lake.ngrams import EvalNgramIndex

        index = EvalNgramIndex.from_config(cfg)
        eval_index = index.to_bytes()
        run.stats.metrics["decontamination"] = {"eval_sets": list(index.names), "ngrams": len(index), "n": index.n}
    built = sources.documents(spark, files, scores, commits, stage_cfg, tok_json, eval_index)
    failed = write_rejects(run, built.documents)
    docs = assign_groups(built.documents.filter(F.col("error").isNull()).drop("error"), seed=stage_cfg.seed,
                         parts=stage_cfg.parts)

    done: dict[tuple[str, int], dict] = {}
    for source in SOURCES:
        for part in range(stage_cfg.parts):
            name = packing.marker_name(source, part)
            if run.shard_done(name):
                info = run.shard_info(name)
                if info.get("fingerprint") == fingerprint:
                    done[(source, part)] = info
    resumed = len(done)
    if resumed:
        log.info("resuming attempt %s: %d groups already packed", run.attempt, resumed)
    spec = packing.PackSpec(
        lake_root=lake.root, s3_endpoint_url=cfg.lake.s3_endpoint_url, s3_region=cfg.lake.s3_region,
        attempt_prefix=run.attempt_prefix, tokenizer_json=tok_json,
        seq_lens=stage_cfg.seq_len.model_dump(), fim_rates=stage_cfg.fim_rate.model_dump(),
        align=stage_cfg.align.model_dump(), seed=stage_cfg.seed,
        pad_id=SPECIAL_IDS[PAD], eos_id=SPECIAL_IDS[EOS], bos_id=SPECIAL_IDS[BOS] if stage_cfg.add_bos else None,
        shard_tokens=stage_cfg.shard_tokens, fingerprint=fingerprint, done=frozenset(done))
    todo = docs
    if done:
        done_keys = spark.createDataFrame([{"source": s, "part": p} for s, p in done], "source string, part int")
        todo = docs.join(F.broadcast(done_keys), ["source", "part"], "left_anti")
    # One Spark partition per group at most; rows sorted so each group arrives contiguous and in order.
    groups = (todo.select("source", "part", "order", "doc_id", "pieces")
              .repartition(min(len(SOURCES) * stage_cfg.parts, max(1, spark.sparkContext.defaultParallelism * 4)),
                           "source", "part")
              .sortWithinPartitions("source", "part", "order", "doc_id"))
    results = groups.mapInArrow(lambda batches: packing.pack_partition(spec, batches), packing.RESULT_SCHEMA)
    for row in results.collect():
        done[(row["source"], row["part"])] = json.loads(row["info"])

    shards = {s: [sh for part in range(stage_cfg.parts) for sh in done.get((s, part), {}).get("shards", [])]
              for s in SOURCES}
    index = build_index(seq_lens=stage_cfg.seq_len.model_dump(), shards=shards, vocab_size=_vocab_size(tok_json),
                        pad_id=SPECIAL_IDS[PAD], eos_id=SPECIAL_IDS[EOS],
                        bos_id=SPECIAL_IDS[BOS] if stage_cfg.add_bos else None,
                        fim_rates=stage_cfg.fim_rate.model_dump(), aligned=stage_cfg.align.model_dump(),
                        tokenizer={"release": release.name, "stage": stage_cfg.tokenizer_stage,
                                   "uri": lake.storage.uri(
                                       f"{lake.require(release, stage_cfg.tokenizer_stage).prefix}/tokenizer")})
    write_index(run, index)

    stats = run.stats
    counts = built.counts()
    stats.records_in = counts.pop("files_in") + counts.pop("commits_in")
    repositories = {k.removeprefix("repo_"): counts.pop(k) for k in sorted(counts) if k.startswith("repo_")}
    for reason, n in sorted(counts.items()):
        if n:
            stats.drop(reason, n)
    tally = FailureTally("documents", items=stats.records_in)
    for row in failed:
        tally.add({"item": row["doc_id"], "reason": row["reason"], "error_type": row["detail"].split(":", 1)[0],
                   "detail": row["detail"]})
        stats.drop(row["reason"])
    check_failures(STAGE, tally, cfg.item_failures)
    per_source = {s: {"documents": sum(i["documents"] for (src, _p), i in done.items() if src == s),
                      "fim_documents": sum(i["fim"] for (src, _p), i in done.items() if src == s),
                      "tokens": index["sources"][s]["num_tokens"],
                      "sequences": index["sources"][s]["num_sequences"],
                      "padding": index["sources"][s]["num_padding"]} for s in SOURCES}
    for numbers in per_source.values():
        numbers["fim_rate"] = round(numbers["fim_documents"] / numbers["documents"], 4) if numbers["documents"] else 0.0
    stats.records_out = sum(n["documents"] for n in per_source.values())
    stats.bytes_out = 4 * sum(index["sources"][s]["num_sequences"] * index["sources"][s]["seq_len"] for s in SOURCES)
    stats.metrics.update({"tokens_per_source": {s: n["tokens"] for s, n in per_source.items()},
                          "sources": per_source, "repositories": repositories, "input": stage_cfg.input,
                          "resumed_groups": resumed, "fingerprint": fingerprint, "item_failures": tally.to_dict()})
    return stats.to_dict()


REJECTS = [("source", "string"), ("doc_id", "string"), ("reason", "string"), ("detail", "string")]


def write_rejects(run: StageRun, documents) -> list[dict]:
    """The items whose documents could not be made (rows with ``error``), written as the ``rejects`` dataset."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    rows = []
    for row in documents.filter(F.col("error").isNotNull()).select("source", "doc_id", "error").collect():
        reason, _, detail = row["error"].partition("|")
        rows.append({"source": row["source"], "doc_id": row["doc_id"], "reason": reason, "detail": detail})
    rows.sort(key=lambda r: (r["source"], r["doc_id"]))
    run.write_table("rejects", pa.Table.from_pylist(rows, schema=pa.schema(REJECTS)), 0)
    return rows


def _vocab_size(tok_json: str) -> int:
    from lake.tokens import from_json

    return from_json(tok_json).get_vocab_size()


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(STAGE, __doc__.split("\n\n")[0], partition="release")

    def body(args, cfg: PlatformConfig) -> int:
        stage_cfg = cfg.stage(STAGE, DatasetBuildConfig)
        lake = cfg.open_lake()
        part = rel.partition(args.release)
        lake.require(part, stage_cfg.input)
        lake.require(part, stage_cfg.tokenizer_stage)
        with StageRun(lake, part, STAGE, resume=stage_cfg.resume, params=stage_cfg.model_dump()) as run:
            stats = build(run, cfg, stage_cfg)
        print(f"dataset_build {args.release}: {json.dumps(stats['metrics']['tokens_per_source'])} tokens; "
              f"committed {lake.storage.uri(lake.require(part, STAGE).prefix)}")
        return 0

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    sys.exit(main())
