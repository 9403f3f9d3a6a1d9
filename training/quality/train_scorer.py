"""Stage ``train_scorer``: fine-tune a Llama-structured model with a regression head on the oracle's labels,
publishing a scorer version.

The report's recipe: a Llama-2-structured base (1.3B) plus a regression head (``num_labels=1``), one epoch of
MSE on labels rescaled to [0, 1]; reported MAE 0.91 on the 0-10 scale over a held-out set. Here the base is
``stages.train_scorer.base_model``: a path (the tiny local base is built on the spot when missing), or
``release:<name>``, that release's pretrained model, so the model curates its own data. Files are cut to
``max_tokens`` with the same head-of-file policy as batch scoring. The held-out split is chosen by a hash of
the file id, so it is stable across runs and versions trained on the same labels are compared on the same files.

The score threshold is fixed here, once: the ``drop_fraction`` quantile of the new scorer's scores over a
calibration sample (files of the labelled snapshot outside the labels, drawn uniformly by a hash of the id).
Output, under ``models/scorer/{version}/train_scorer/``: ``model`` (Hugging Face format: transformers and vLLM
load it unchanged, plus ``scorer.json``: version, labels' provenance, base model, held-out MAE, threshold),
``heldout`` (label vs prediction per test file) and ``calibration`` (id, score). A committed version is never
trained again. A killed run starts over (one short epoch; no mid-epoch checkpoint).

    python -m training.quality.train_scorer --version v2 [--base-model release:2026-q3]
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from lake.cli import run_stage, stage_parser
from lake.config import REPO_ROOT
from lake.release import RELEASE_REF, resolve_model
from lake.stage import Lake, StageRun
from lake.timing import fixed_cost
from training.quality import versions
from training.quality.config import TrainScorerConfig
from training.quality.prompt import PROMPT_VERSION
from training.quality.quality_filter import bottom_share
from training.quality.scorer import encode, pad_batch, pooled_scores
from training.quality.stage_io import upload_dir

STAGE = versions.TRAIN_STAGE
log = logging.getLogger(__name__)
HELDOUT = pa.schema([("id", pa.string()), ("language", pa.string()), ("label", pa.float32()),
                     ("prediction", pa.float32())])
CALIBRATION = pa.schema([("id", pa.string()), ("language", pa.string()), ("score", pa.float32())])


def is_heldout(file_id: str, fraction: float, seed: int) -> bool:
    """Stable membership of the held-out split.

    >>> sum(is_heldout(str(i), 0.1, 0) for i in range(10_000)) in range(900, 1100)
    True
    """
    return xxhash.xxh64_intdigest(file_id.encode(), seed=seed + 1) / 2**64 < fraction


def labelled_files(lake: Lake, version: str, snapshot: str, cfg: TrainScorerConfig) -> pa.Table:
    """Labels joined with their file contents (only label rows whose file is in the input)."""
    labels = lake.read_table(versions.partition(version), cfg.labels_stage, "labels",
                             columns=["id", "language", "label"])
    if labels.num_rows < 2:
        raise ValueError(f"stage {cfg.labels_stage} of scorer {version!r} has {labels.num_rows} labels; "
                         f"need at least 2")
    ids = labels.column("id")
    parts = [pa.Table.from_batches([b]).filter(pc.is_in(b.column("id"), value_set=ids))
             for b in lake.iter_batches(snapshot, cfg.input, "files", columns=["id", "content"])]
    contents = pa.concat_tables([p for p in parts if p.num_rows] or [pa.table({"id": pa.array([], pa.string()),
                                                                             "content": pa.array([], pa.string())})])
    joined = labels.join(contents, "id", join_type="inner").sort_by("id")
    lost = labels.num_rows - joined.num_rows
    if lost:
        log.warning("%d labelled files are not in %s/%s files (different input commit?): not used",
                    lost, snapshot, cfg.input)
    return joined


def resolve_base(lake: Lake, cfg: TrainScorerConfig) -> tuple[Path, str]:
    """The base checkpoint directory and its provenance (``release:<name>``: that release's pretrained model)."""
    if cfg.base_model.startswith(RELEASE_REF):
        path, ref = resolve_model(lake, cfg.base_model)
        return Path(path), ref
    path = Path(cfg.base_model)
    path = path if path.is_absolute() else REPO_ROOT / path
    if (path / "config.json").exists():
        return path, cfg.base_model
    if not cfg.build_base_if_missing:
        raise FileNotFoundError(f"base checkpoint {path} not found (stages.train_scorer.base_model)")
    from training.quality.tiny_base import build_tiny_base

    log.info("base checkpoint %s missing: building the tiny local base", path)
    return build_tiny_base(path), cfg.base_model


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up then linear decay to 10% of the peak.

    >>> lr_at(0, 100, 1.0, 10), lr_at(10, 100, 1.0, 10), round(lr_at(99, 100, 1.0, 10), 3)
    (0.1, 1.0, 0.11)
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (1.0 - 0.9 * progress)


def train_step(model, optim, input_ids, lengths, targets, lr: float) -> float:
    """One optimizer step of the regression fine-tune on a right-padded batch; returns the batch's MSE."""
    import torch

    device = next(model.parameters()).device
    for group in optim.param_groups:
        group["lr"] = lr
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        pred = pooled_scores(model, input_ids.to(device), lengths.to(device)).float()
    loss = torch.nn.functional.mse_loss(pred, targets.to(device))
    optim.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optim.step()
    return loss.item()


def train(cfg: TrainScorerConfig, base: Path, texts: list[str], labels: np.ndarray, out: Path) -> dict:
    """One run of fine-tuning; saves the scorer to ``out`` and returns training numbers."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with fixed_cost("model_load"):
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, problem_type="regression",
                                                                   dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device).train()
    ids, cut = encode(tokenizer, texts, cfg.max_tokens)
    order = list(range(len(ids)))
    steps_per_epoch = math.ceil(len(order) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    targets = torch.tensor(labels / 10.0, dtype=torch.float32)
    rng = random.Random(cfg.seed)
    losses, step, tokens, t0 = [], 0, 0, time.monotonic()
    for epoch in range(cfg.epochs):
        rng.shuffle(order)
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start:start + cfg.batch_size]
            input_ids, lengths = pad_batch([ids[i] for i in batch], tokenizer.pad_token_id)
            losses.append(train_step(model, optim, input_ids, lengths, targets[batch],
                                     lr_at(step, total, cfg.learning_rate, cfg.warmup_steps)))
            tokens += int(lengths.sum())
            step += 1
            if step % cfg.log_every == 0 or step == total:
                elapsed = time.monotonic() - t0
                log.info("epoch %d step %d/%d: mse %.4f (mean of last %d: %.4f), %.0f tokens/s", epoch + 1, step,
                         total, losses[-1], min(cfg.log_every, len(losses)),
                         float(np.mean(losses[-cfg.log_every:])), tokens / max(elapsed, 1e-9))
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    window = max(1, min(cfg.log_every, len(losses)))
    return {"steps": step, "train_tokens": tokens, "train_seconds": round(time.monotonic() - t0, 2),
            "train_files_truncated": int(sum(cut)), "mse_first": round(float(np.mean(losses[:window])), 5),
            "mse_last": round(float(np.mean(losses[-window:])), 5), "device": device.type}


def evaluate(model_dir: Path, texts: list[str], max_tokens: int) -> np.ndarray:
    """Predictions (0-10) of the saved scorer, through the same code path as batch scoring."""
    from transformers import AutoTokenizer

    from training.quality.scorer import TransformersScorer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids, _cut = encode(tokenizer, texts, max_tokens)
    return TransformersScorer(str(model_dir), dtype="float32").score(ids)


def calibration_sample(lake: Lake, snapshot: str, cfg: TrainScorerConfig, exclude: set[str]) -> pa.Table:
    """Up to ``calibration_size`` files of the labelled snapshot outside ``exclude``: the lowest xxh64 of the id
    (a uniform sample that is the same on every run), with their contents."""
    picked: list[tuple[int, str]] = []
    for batch in lake.iter_batches(snapshot, cfg.input, "files", columns=["id"]):
        for file_id in batch.column("id").to_pylist():
            if file_id not in exclude:
                picked.append((xxhash.xxh64_intdigest(file_id.encode(), seed=cfg.seed + 2), file_id))
    chosen = pa.array(sorted(i for _h, i in sorted(picked)[:cfg.calibration_size]), pa.string())
    parts = [pa.Table.from_batches([b]).filter(pc.is_in(b.column("id"), value_set=chosen))
             for b in lake.iter_batches(snapshot, cfg.input, "files", columns=["id", "language", "content"])]
    table = pa.concat_tables([p for p in parts if p.num_rows]) if any(p.num_rows for p in parts) else None
    return table.sort_by("id") if table is not None else pa.table(
        {"id": pa.array([], pa.string()), "language": pa.array([], pa.string()), "content": pa.array([], pa.string())})


def run(lake: Lake, version: str, cfg: TrainScorerConfig) -> dict:
    versions.refuse_published(lake, version)
    part = versions.partition(version)
    labels_commit = lake.require(part, cfg.labels_stage)
    label_metrics = labels_commit.stats["metrics"]
    snapshot = label_metrics["snapshot"]
    input_commit = lake.require(snapshot, cfg.input)
    params = {**cfg.model_dump(), "snapshot": snapshot, "labels_attempt": labels_commit.attempt,
              "input_attempt": input_commit.attempt}
    with StageRun(lake, part, STAGE, params=params) as stage:
        data = labelled_files(lake, version, snapshot, cfg)
        file_ids = data.column("id").to_pylist()
        heldout = np.array([is_heldout(i, cfg.test_fraction, cfg.seed) for i in file_ids])
        if heldout.all() or not heldout.any():
            heldout[:] = False
            heldout[0] = True  # tiny label sets: keep one file out so the MAE is a real held-out number
        texts = data.column("content").to_pylist()
        y = np.array(data.column("label").to_pylist(), dtype=np.float32)
        train_idx, test_idx = np.flatnonzero(~heldout), np.flatnonzero(heldout)
        log.info("scorer %s: training on %d labelled files of %s, %d held out", version, len(train_idx), snapshot,
                 len(test_idx))
        base, base_ref = resolve_base(lake, cfg)
        with tempfile.TemporaryDirectory(prefix="scorer-") as tmp:
            out = Path(tmp)
            numbers = train(cfg, base, [texts[i] for i in train_idx], y[train_idx], out)
            pred = evaluate(out, [texts[i] for i in test_idx], cfg.max_tokens)
            truth = y[test_idx]
            langs = [data.column("language")[int(i)].as_py() for i in test_idx]
            mae = float(np.mean(np.abs(pred - truth)))
            baseline = float(np.mean(np.abs(float(np.mean(y[train_idx])) - truth)))
            per_lang = defaultdict(list)
            for lang, p, t in zip(langs, pred, truth, strict=True):
                per_lang[lang].append(abs(float(p) - float(t)))
            calib = calibration_sample(lake, snapshot, cfg, {file_ids[i] for i in train_idx})
            calib_scores = (evaluate(out, calib.column("content").to_pylist(), cfg.max_tokens)
                            if calib.num_rows else np.zeros(0, dtype=np.float32))
            threshold, _drop = bottom_share(calib_scores.astype(np.float64), calib.column("id").to_pylist(),
                                            cfg.drop_fraction)
            if threshold is None:
                raise ValueError(f"scorer {version!r}: no calibration files left in {snapshot}/{cfg.input} to fix "
                                 f"the score threshold on")
            card = {"version": version, "threshold": round(float(threshold), 6), "drop_fraction": cfg.drop_fraction,
                    "calibration": {"snapshot": snapshot, "files": calib.num_rows,
                                    "quantiles": _quantiles(calib_scores)},
                    "mae_heldout": round(mae, 4), "n_heldout": int(len(test_idx)), "n_train": int(len(train_idx)),
                    "labels": {"oracle": label_metrics.get("oracle"), "oracle_is_llm": label_metrics.get("oracle_is_llm"),
                               "prompt_version": label_metrics.get("prompt_version", PROMPT_VERSION),
                               "snapshot": snapshot, "input": cfg.input,
                               "input_attempt": label_metrics.get("input_attempt"),
                               "labels_attempt": labels_commit.attempt, "labels_from": label_metrics.get("labels_from"),
                               "count": int(labels_commit.stats["records_out"])},
                    "base_model": base_ref, "max_tokens": cfg.max_tokens, "seed": cfg.seed,
                    "score_scale": "head output x 10 = 0-10 oracle scale"}
            (out / versions.CARD).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
            upload_dir(stage, "model", out)
        stage.write_table("heldout", pa.table({"id": [file_ids[i] for i in test_idx], "language": langs,
                                               "label": truth, "prediction": pred.astype(np.float32)},
                                              schema=HELDOUT), 0)
        stage.write_table("calibration", pa.table({"id": calib.column("id"), "language": calib.column("language"),
                                                   "score": pa.array(calib_scores, pa.float32())},
                                                  schema=CALIBRATION), 0)
        stage.stats.records_in = data.num_rows
        stage.stats.records_out = len(train_idx)
        stage.stats.metrics.update({
            **numbers, "version": version, "snapshot": snapshot, "n_train": int(len(train_idx)),
            "n_heldout": int(len(test_idx)), "mae_heldout": round(mae, 4),
            "mae_predict_train_mean": round(baseline, 4),
            "mae_heldout_by_language": {k: round(float(np.mean(v)), 4) for k, v in sorted(per_lang.items())},
            "threshold": card["threshold"], "drop_fraction": cfg.drop_fraction, "calibration_files": calib.num_rows,
            "base_model": base_ref, "oracle": label_metrics.get("oracle"), "labels_from": label_metrics.get("labels_from"),
            "prompt_version": PROMPT_VERSION})
        log.info("scorer %s: held-out MAE %.3f on the 0-10 scale over %d files (predicting the mean: %.3f); "
                 "threshold %.4f fixed on %d calibration files", version, mae, len(test_idx), baseline,
                 card["threshold"], calib.num_rows)
    return lake.stats(part, STAGE)


def _quantiles(values: np.ndarray) -> dict:
    if not len(values):
        return {}
    qs = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9]
    return {str(q): round(float(v), 4) for q, v in zip(qs, np.quantile(values, qs), strict=True)}


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(STAGE, "Fine-tune a quality scorer version (Llama + regression head) on its oracle labels.",
                          partition="scorer")
    parser.add_argument("--base-model", default=None,
                        help="override stages.train_scorer.base_model (a path, or release:<name>)")

    def body(args, cfg) -> int:
        stage_cfg = cfg.stage(STAGE, TrainScorerConfig)
        if args.base_model:
            stage_cfg = TrainScorerConfig.model_validate({**stage_cfg.model_dump(), "base_model": args.base_model})
        run(cfg.open_lake(), args.version, stage_cfg)
        return 0

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    sys.exit(main())
