"""Stage ``score``: rate every file of a snapshot with the pinned scorer version, shard by shard.

Reads the committed ``files`` of ``stages.score.input`` and the scorer (version ``stages.score.scorer_version``
from ``models/scorer/{version}/``, or a fixed path); writes ``scores`` (SCORES: id, language, score on the
0-10 scale, tokens scored, whether the file was cut). Backends: vLLM's pooling runner (``LLM.classify``) or
transformers, chosen by ``backend`` ("auto": vLLM on a GPU, the measured CPU default otherwise).

Sharding and resume: each input parquet file is cut into shards of ``shard_rows`` rows; a shard's scores are
written under a stable part name, then a ``.done`` marker. A killed run resumes (the default) by adopting the
unfinished attempt and skipping every marked shard, and a shard cut off before its marker is scored again
into the same part name, so every file ends up scored exactly once. Throughput is logged as files/s and
tokens/s. Truncation: files are scored on BOS + their first ``max_tokens - 1`` tokens.

    python -m training.quality.score --snapshot 2026-10 [--scorer-version v2] [--backend vllm] [--fresh]
"""

from __future__ import annotations

import io
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.cli import run_stage, stage_parser
from lake.stage import Lake, StageRun
from training.quality import versions
from training.quality.config import ScoreConfig
from training.quality.records import SCORES
from training.quality.scorer import Scorer, encode, make_scorer, pick_backend
from training.quality.stage_io import guard_resume, materialize

STAGE = "score"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shard:
    name: str
    key: str
    start: int
    rows: int


def plan_shards(keys: list[str], row_counts: list[int], shard_rows: int) -> list[Shard]:
    """Stable shards over the input files: same input commit + shard_rows => same shard names and rows.

    >>> [(s.name, s.start, s.rows) for s in plan_shards(["a.parquet", "b.parquet"], [5, 2], 3)]
    [('00000-00000', 0, 3), ('00000-00001', 3, 2), ('00001-00000', 0, 2)]
    """
    return [s for k, (key, count) in enumerate(zip(keys, row_counts, strict=True))
            for s in key_shards(k, key, count, shard_rows)]


def key_shards(k: int, key: str, rows: int, shard_rows: int) -> list[Shard]:
    """The shards of the ``k``-th input file."""
    return [Shard(f"{k:05d}-{c:05d}", key, start, min(shard_rows, rows - start))
            for c, start in enumerate(range(0, rows, shard_rows))]


def scorer_dir(lake: Lake, cfg: ScoreConfig) -> tuple[Path, str]:
    """The scorer checkpoint directory, and a provenance string recorded with the run."""
    if cfg.model:
        return Path(cfg.model), cfg.model
    if not cfg.scorer_version:
        raise ValueError("stages.score needs a scorer_version (or a model path)")
    info = lake.commit_info(versions.partition(cfg.scorer_version), versions.TRAIN_STAGE)
    if info is None:
        raise FileNotFoundError(f"scorer version {cfg.scorer_version!r} does not exist in {lake.root} (published: "
                                f"{versions.published(lake) or 'none'}): train it with the scorer DAG first")
    return (materialize(lake, versions.partition(cfg.scorer_version), versions.TRAIN_STAGE, "model"),
            f"scorer:{cfg.scorer_version}@{info.attempt}")


def score_table(scorer: Scorer, tokenizer, rows: pa.Table, max_tokens: int) -> pa.Table:
    ids, cut = encode(tokenizer, rows.column("content").to_pylist(), max_tokens)
    scores = scorer.score(ids)
    return pa.table({"id": rows.column("id"), "language": rows.column("language"),
                     "score": pa.array(scores, pa.float32()),
                     "num_tokens": pa.array([len(i) for i in ids], pa.int32()),
                     "truncated": pa.array(cut, pa.bool_())}, schema=SCORES)


def score_shard(stage: StageRun, scorer: Scorer, tokenizer, rows: pa.Table, name: str, max_tokens: int) -> dict:
    """Score one shard, write its part under the shard's stable name, then mark it done (in that order)."""
    t0 = time.monotonic()
    scores = score_table(scorer, tokenizer, rows, max_tokens)
    seconds = time.monotonic() - t0
    stage.write_table("scores", scores, name)
    done = {"files": scores.num_rows, "tokens": int(pc.sum(scores.column("num_tokens")).as_py() or 0),
            "truncated": int(pc.sum(scores.column("truncated")).as_py() or 0), "seconds": round(seconds, 4)}
    stage.mark_shard_done(name, done)
    return done


def run(lake: Lake, snapshot: str, cfg: ScoreConfig, *, resume: bool = True, backend: str | None = None,
        scorer: Scorer | None = None) -> dict:
    """Score every input file; ``scorer`` injects an already started backend (tests share one vLLM engine)."""
    from transformers import AutoTokenizer

    input_commit = lake.require(snapshot, cfg.input)
    model_dir, model_ref = scorer_dir(lake, cfg)
    chosen = scorer.name if scorer else pick_backend(backend or cfg.backend, cfg.cpu_backend)
    keys = [k for k in lake.dataset_keys(snapshot, cfg.input, "files") if k.endswith(".parquet")]
    version = None if cfg.model else cfg.scorer_version
    params = {**cfg.model_dump(exclude={"engine_args"}), "backend_used": chosen, "model_ref": model_ref,
              "scorer_version": version, "input_attempt": input_commit.attempt}
    with StageRun(lake, snapshot, STAGE, resume=resume, params=params) as stage:
        guard_resume(stage, {cfg.input: input_commit.attempt, "model": model_ref, "max_tokens": str(cfg.max_tokens),
                             "shard_rows": str(cfg.shard_rows)})
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        totals = {"files": 0, "tokens": 0, "truncated": 0}
        fresh = {"files": 0, "tokens": 0, "seconds": 0.0, "shards": 0}
        shards: list[Shard] = []
        expected = input_commit.stats.get("records_out") or 0
        for k, key in enumerate(keys):
            # One input file in memory at a time; its rows are read only if one of its shards is left to score.
            parquet = pq.ParquetFile(io.BytesIO(lake.storage.read_bytes(key)))
            table: pa.Table | None = None
            for shard in key_shards(k, key, parquet.metadata.num_rows, cfg.shard_rows):
                shards.append(shard)
                if stage.shard_done(shard.name):
                    done = stage.shard_info(shard.name)
                else:
                    if table is None:
                        table = parquet.read(columns=["id", "language", "content"])
                    if scorer is None:
                        log.info("starting the %s scorer on %s", chosen, model_dir)
                        scorer = make_scorer(chosen, str(model_dir), max_tokens=cfg.max_tokens, dtype=cfg.dtype,
                                             token_budget=cfg.token_budget,
                                             gpu_memory_utilization=cfg.gpu_memory_utilization,
                                             engine_args=dict(cfg.engine_args))
                    done = score_shard(stage, scorer, tokenizer, table.slice(shard.start, shard.rows), shard.name,
                                       cfg.max_tokens)
                    for name in ("files", "tokens", "seconds"):
                        fresh[name] += done[name]
                    fresh["shards"] += 1
                    log.info("shard %s: %d files, %.1f files/s, %.0f tokens/s (%d of ~%d files done)", shard.name,
                             done["files"], done["files"] / max(done["seconds"], 1e-9),
                             done["tokens"] / max(done["seconds"], 1e-9), totals["files"] + done["files"], expected)
                for name in totals:
                    totals[name] += done[name]
        if not shards:
            log.warning("%s/%s has no files: committing an empty scores dataset", snapshot, cfg.input)
            stage.write_table("scores", SCORES.empty_table(), "empty")
        stage.stats.records_in = sum(s.rows for s in shards)
        stage.stats.records_out = totals["files"]
        stage.stats.metrics.update({
            "backend": chosen, "model": model_ref, "scorer_version": version, "max_tokens": cfg.max_tokens,
            "shards": len(shards),
            "shards_scored_this_run": fresh["shards"], "shards_adopted_from_killed_run": len(shards) - fresh["shards"],
            "tokens_scored": totals["tokens"], "files_truncated": totals["truncated"],
            "files_per_s": round(fresh["files"] / fresh["seconds"], 2) if fresh["seconds"] else None,
            "tokens_per_s": round(fresh["tokens"] / fresh["seconds"], 1) if fresh["seconds"] else None})
        log.info("scored %d files (%d tokens, %d truncated) with %s", totals["files"], totals["tokens"],
                 totals["truncated"], chosen)
    return lake.stats(snapshot, STAGE)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(STAGE, "Score every file of a snapshot with the trained quality scorer (resumable).")
    parser.add_argument("--backend", choices=["auto", "vllm", "transformers"], default=None,
                        help="override stages.score.backend")
    parser.add_argument("--scorer-version", type=lambda v: v.strip() or None, default=None,
                        help="score with this scorer version instead of the pinned stages.score.scorer_version")
    parser.add_argument("--fresh", action="store_true", help="start a new attempt instead of resuming a killed one")

    def body(args, cfg) -> int:
        stage_cfg = cfg.stage(STAGE, ScoreConfig)
        if args.scorer_version:
            stage_cfg = stage_cfg.model_copy(update={"scorer_version": args.scorer_version, "model": None})
        run(cfg.open_lake(), args.snapshot, stage_cfg, resume=not args.fresh, backend=args.backend)
        return 0

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    sys.exit(main())
