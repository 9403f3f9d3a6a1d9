"""Stage ``oracle_label`` of a new scorer version: draw the stratified sample and have the oracle rate it (0-10).

Reads the committed ``files`` of ``stages.oracle_label.input`` of one snapshot; writes, under the scorer version
(``models/scorer/{version}/oracle_label/``), ``labels`` (LABELS: the rating, the oracle's name, the prompt
version and the full answer) and ``failures`` (answers that were empty, unparseable or out of range, or requests
that failed: counted as drop reasons and left unlabelled, never guessed). Work is sharded (``shard_size``
files); a killed run resumes and never re-rates a finished shard. On the local profile the oracle is the
rule-based teacher, which is NOT an LLM (the log says so). ``--labels-from V`` reuses version V's labels
(a new base model trained on the same labels, compared on the same held-out files).

    python -m training.quality.oracle_label --version v2 --snapshot 2026-10 [--oracle release:2026-q3]
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter

import pyarrow as pa

from lake.cli import run_stage, stage_parser
from lake.stage import Lake, StageRun, check_snapshot
from training.quality import versions
from training.quality.config import OracleLabelConfig
from training.quality.oracles import Oracle, RateRequest, make_oracle
from training.quality.prompt import PROMPT_VERSION, parse_rating, render
from training.quality.records import LABEL_FAILURES, LABELS
from training.quality.sample import choose_ids, quotas, take_rows
from training.quality.stage_io import guard_resume

STAGE = "oracle_label"
log = logging.getLogger(__name__)


def draw_sample(lake: Lake, snapshot: str, cfg: OracleLabelConfig) -> tuple[pa.Table, dict]:
    """The sampled file records, and the population/quota numbers for the stats."""
    chosen, counts = choose_ids(lake.iter_batches(snapshot, cfg.input, "files", columns=["id", "language"]),
                                sample_size=cfg.sample_size, seed=cfg.seed, languages=cfg.languages)
    missing = sorted(set(cfg.languages) - set(counts))
    if missing:
        log.warning("languages with no files in %s/%s: %s", snapshot, cfg.input, missing)
    sample = take_rows(lake.iter_batches(snapshot, cfg.input, "files"), chosen, cfg.seed)
    info = {"population": dict(sorted(counts.items())), "quotas": quotas(counts, cfg.sample_size)}
    log.info("sample: %d files over %d languages (of %d files)", sample.num_rows, len(info["quotas"]),
             sum(counts.values()))
    return sample, info


def rate_shard(oracle: Oracle, rows: pa.Table, max_chars: int) -> tuple[pa.Table, pa.Table]:
    """Ask the oracle about one shard; split the answers into labels and failures."""
    records = rows.to_pylist()
    requests = [RateRequest(render(r["language"], r["content"], max_chars), r["language"], r["content"])
                for r in records]
    answers = oracle.answer(requests)
    if len(answers) != len(records):
        raise RuntimeError(f"oracle {oracle.name} returned {len(answers)} answers for {len(records)} prompts")
    labels, failures = [], []
    for record, answer in zip(records, answers, strict=True):
        common = {"oracle": oracle.name, "prompt_version": PROMPT_VERSION}
        if answer is None:
            failures.append({"id": record["id"], "language": record["language"],
                             "reason": "oracle_request_failed", "answer": None, **common})
            continue
        rating = parse_rating(answer)
        if rating.value is None:
            failures.append({"id": record["id"], "language": record["language"], "reason": rating.reason,
                             "answer": answer, **common})
            continue
        labels.append({"id": record["id"], "repo": record["repo"], "path": record["path"],
                       "language": record["language"], "sha256": record["sha256"], "label": rating.value,
                       "answer": answer, **common})
    return (pa.Table.from_pylist(labels, schema=LABELS), pa.Table.from_pylist(failures, schema=LABEL_FAILURES))


def run(lake: Lake, version: str, snapshot: str, cfg: OracleLabelConfig, *, resume: bool = True,
        oracle: Oracle | None = None) -> dict:
    """Sample ``snapshot``, rate shard by shard, commit under scorer ``version``; returns the committed stats."""
    versions.refuse_published(lake, version)
    input_commit = lake.require(snapshot, cfg.input)
    params = {"snapshot": snapshot, "input": cfg.input, "input_attempt": input_commit.attempt,
              **cfg.model_dump(exclude={"engine_args"})}
    with StageRun(lake, versions.partition(version), STAGE, resume=resume, params=params) as stage:
        guard_resume(stage, {f"{snapshot}/{cfg.input}": input_commit.attempt})
        sample, info = draw_sample(lake, snapshot, cfg)
        shards = range(0, sample.num_rows, cfg.shard_size)
        drops: Counter = Counter()
        histogram: Counter = Counter()
        labelled = 0
        oracle_name = oracle.name if oracle else None
        t0 = time.monotonic()
        for n, start in enumerate(shards):
            name = f"labels-{n:05d}"
            if stage.shard_done(name):
                done = stage.shard_info(name)
                log.info("shard %s already rated (%d labels): skipped", name, done["labelled"])
            else:
                oracle = oracle or make_oracle(cfg, lake)
                labels, failures = rate_shard(oracle, sample.slice(start, cfg.shard_size), cfg.max_chars)
                stage.write_table("labels", labels, n)
                stage.write_table("failures", failures, n)
                done = {"labelled": labels.num_rows, "oracle": oracle.name,
                        "drops": dict(Counter(failures.column("reason").to_pylist())),
                        "histogram": dict(Counter(str(round(v)) for v in labels.column("label").to_pylist()))}
                stage.mark_shard_done(name, done)
                rate = (start + cfg.shard_size) / max(time.monotonic() - t0, 1e-9)
                log.info("shard %d/%d: %d labelled, drops %s (%.1f files/s)", n + 1, len(shards),
                         labels.num_rows, done["drops"], rate)
            labelled += done["labelled"]
            oracle_name = oracle_name or done["oracle"]
            drops.update(done["drops"])
            histogram.update(done["histogram"])
        if not sample.num_rows:
            log.warning("%s/%s has no files to sample: committing empty labels", snapshot, cfg.input)
            stage.write_table("labels", LABELS.empty_table(), "empty")
            stage.write_table("failures", LABEL_FAILURES.empty_table(), "empty")
        for reason, count in drops.items():
            stage.stats.drop(reason, count)
        stage.stats.records_in = sample.num_rows
        stage.stats.records_out = labelled
        stage.stats.metrics.update({
            "snapshot": snapshot, "input": cfg.input, "input_attempt": input_commit.attempt, "labels_from": None,
            "oracle": oracle_name, "oracle_is_llm": bool(oracle_name) and not oracle_name.startswith("rules:"),
            "prompt_version": PROMPT_VERSION, "label_histogram": dict(sorted(histogram.items(), key=lambda kv: int(kv[0]))),
            **info})
    return lake.stats(versions.partition(version), STAGE)


def reuse_labels(lake: Lake, version: str, source: str) -> dict:
    """Commit scorer version ``source``'s labels (and failures) as ``version``'s, with their provenance."""
    versions.refuse_published(lake, version)
    src = lake.require(versions.partition(source), STAGE)
    with StageRun(lake, versions.partition(version), STAGE, params={"labels_from": source,
                                                                   "source_attempt": src.attempt}) as stage:
        for dataset in ("labels", "failures"):
            stage.write_table(dataset, lake.read_table(versions.partition(source), STAGE, dataset), 0)
        stage.stats.records_in, stage.stats.records_out = src.stats["records_in"], src.stats["records_out"]
        for reason, count in src.stats["drop_reasons"].items():
            stage.stats.drop(reason, count)
        stage.stats.metrics.update({**src.stats["metrics"], "labels_from": source})
    log.info("scorer %s: reused the %d labels of scorer %s (snapshot %s)", version, src.stats["records_out"],
             source, src.stats["metrics"]["snapshot"])
    return lake.stats(versions.partition(version), STAGE)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(STAGE, "Sample a snapshot's files by language and rate them 0-10 with the oracle (LLM or "
                                 "rule teacher), as the labels of a new scorer version.", partition="scorer")
    parser.add_argument("--snapshot", type=lambda v: check_snapshot(v.strip()) if v.strip() else None, default=None,
                        help="the snapshot whose files are labelled (not with --labels-from)")
    parser.add_argument("--oracle", default=None, help="override stages.oracle_label.oracle (rules, vllm, openai, "
                                                       "release:<name>)")
    parser.add_argument("--labels-from", default=None, help="reuse this scorer version's labels instead of rating")
    parser.add_argument("--fresh", action="store_true", help="start a new attempt instead of resuming a killed one")

    def body(args, cfg) -> int:
        lake = cfg.open_lake()
        if args.labels_from:
            if args.snapshot:
                raise ValueError("--labels-from reuses another version's labels (and its snapshot): drop --snapshot")
            stats = reuse_labels(lake, args.version, args.labels_from)
        else:
            if not args.snapshot:
                raise ValueError("--snapshot is required: the snapshot whose files are labelled")
            stage_cfg = cfg.stage(STAGE, OracleLabelConfig)
            if args.oracle:
                stage_cfg = OracleLabelConfig.model_validate({**stage_cfg.model_dump(), "oracle": args.oracle})
            stats = run(lake, args.version, args.snapshot, stage_cfg, resume=not args.fresh)
        log.info("scorer %s: %d labels of %d sampled files (oracle %s)", args.version, stats["records_out"],
                 stats["records_in"], stats["metrics"]["oracle"])
        return 0

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    sys.exit(main())
