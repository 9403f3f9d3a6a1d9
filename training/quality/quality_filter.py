"""Stage ``quality_filter``: drop the files scoring below a threshold (the report drops the bottom ~10%).

Reads the committed ``files`` of ``stages.quality_filter.input`` and ``scores`` of ``scores_stage``; writes
``files`` (kept, FILES schema) and ``quarantine`` (QUARANTINE, reason ``low_quality_score`` with the score and
threshold, or ``unscored`` for a file the scorer never rated). The threshold (``mode``):

- ``scorer`` (default): the one the scoring scorer version fixed at training time on its calibration sample
  (``scorer.json``), so a file's keep/drop decision means the same thing every month;
- ``quantile``: this snapshot's ``drop_fraction`` quantile (ties broken by file id, so the dropped count is
  exact and deterministic);
- ``fixed``: ``threshold`` from config.

``score_histogram.json`` beside ``_stats.json`` holds per-language score histograms (all, kept, dropped); the
stats carry the scorer version, the threshold, the dropped share, and, when the snapshot was curated before by
another scorer version, the share of files whose keep/drop decision changed. Needs no GPU: pyarrow and numpy only.

    python -m training.quality.quality_filter --snapshot 2026-10
"""

from __future__ import annotations

import io
import json
import logging
import math
import sys
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.cli import run_stage, stage_parser
from lake.schemas import FILES, QUARANTINE
from lake.stage import Lake, StageRun
from training.quality import versions
from training.quality.config import QualityFilterConfig

STAGE = "quality_filter"
HISTOGRAM = "score_histogram.json"
log = logging.getLogger(__name__)


def bottom_share(scores: np.ndarray, ids: list[str], fraction: float) -> tuple[float | None, np.ndarray]:
    """The threshold and the drop mask for dropping exactly floor(n * fraction) lowest-scored files.

    Ties at the threshold are broken by file id, so the same scores always drop the same files.

    >>> t, drop = bottom_share(np.array([5.0, 1.0, 3.0, 1.0]), ["a", "b", "c", "d"], 0.5)
    >>> t, drop.tolist()
    (3.0, [False, True, False, True])
    """
    k = math.floor(len(scores) * fraction)
    order = np.lexsort((np.array(ids, dtype=object), scores))
    drop = np.zeros(len(scores), dtype=bool)
    drop[order[:k]] = True
    threshold = float(scores[order[k]]) if k < len(scores) else None
    return threshold, drop


def histogram(scores: np.ndarray, bins: int) -> list[int]:
    """Counts over ``bins`` equal bins of [0, 10]; scores outside fall in the edge bins.

    >>> histogram(np.array([-1.0, 0.5, 9.99, 12.0]), 2)
    [2, 2]
    """
    edges = np.clip(np.floor(scores / 10.0 * bins), 0, bins - 1).astype(int)
    return np.bincount(edges, minlength=bins).tolist()


def load_scores(lake: Lake, snapshot: str, cfg: QualityFilterConfig, input_attempt: str) -> tuple[pa.Table, str | None]:
    """The scores, and the scorer version that made them (None: a scorer given by path)."""
    commit = lake.require(snapshot, cfg.scores_stage)
    scored_input = commit.params.get("input_attempt")
    if scored_input and scored_input != input_attempt:
        raise ValueError(f"{cfg.scores_stage} ({snapshot}) scored input attempt {scored_input}, but {cfg.input} is "
                         f"now committed as {input_attempt}: rerun {cfg.scores_stage} first")
    table = lake.read_table(snapshot, cfg.scores_stage, "scores", columns=["id", "language", "score"])
    return table, commit.params.get("scorer_version")


def scorer_threshold(lake: Lake, version: str | None, snapshot: str) -> float:
    """The threshold scorer ``version`` fixed at training time."""
    if not version:
        raise ValueError(f"the scores of {snapshot} come from a scorer given by path, which has no calibrated "
                         f"threshold: use stages.quality_filter.mode quantile or fixed")
    return float(versions.card(lake, version)["threshold"])


def previous_decisions(lake: Lake, snapshot: str) -> tuple[str | None, set[str]] | None:
    """(scorer version, ids dropped as low quality) of the currently committed quality filter, if any."""
    info = lake.commit_info(snapshot, STAGE)
    if info is None or "quarantine" not in info.datasets:
        return None
    quarantine = lake.read_table(snapshot, STAGE, "quarantine", columns=["id", "reason"])
    low = pc.equal(quarantine.column("reason"), "low_quality_score")
    return info.stats["metrics"].get("scorer_version"), set(quarantine.filter(low).column("id").to_pylist())


def run(lake: Lake, snapshot: str, cfg: QualityFilterConfig) -> dict:
    input_commit = lake.require(snapshot, cfg.input)
    before = previous_decisions(lake, snapshot)
    with StageRun(lake, snapshot, STAGE, params={**cfg.model_dump(), "input_attempt": input_commit.attempt}) as stage:
        scored, version = load_scores(lake, snapshot, cfg, input_commit.attempt)
        ids = scored.column("id").to_pylist()
        if len(set(ids)) != len(ids):
            raise ValueError(f"{cfg.scores_stage} ({snapshot}) has duplicate file ids: refusing to filter")
        values = scored.column("score").to_numpy().astype(np.float64)
        mode = cfg.mode
        if mode == "quantile":
            threshold, drop = bottom_share(values, ids, cfg.drop_fraction)
        else:
            threshold = cfg.threshold if mode == "fixed" else scorer_threshold(lake, version, snapshot)
            drop = values < threshold
        dropped_ids = pa.array([i for i, d in zip(ids, drop, strict=True) if d], pa.string())
        score_ids = scored.column("id")
        kept_n, dropped_n, unscored_n, n_in = 0, 0, 0, 0
        bytes_in = bytes_out = 0
        keys = [k for k in lake.dataset_keys(snapshot, cfg.input, "files") if k.endswith(".parquet")]
        for part, key in enumerate(keys):
            table = pq.read_table(io.BytesIO(lake.storage.read_bytes(key))).select(FILES.names)
            n_in += table.num_rows
            bytes_in += int(pc.sum(table.column("size_bytes")).as_py() or 0)
            position = pc.index_in(table.column("id"), value_set=score_ids)
            unscored = pc.is_null(position)
            low = pc.is_in(table.column("id"), value_set=dropped_ids)
            keep = pc.and_(pc.invert(unscored), pc.invert(low))
            kept = table.filter(keep).cast(FILES)
            stage.write_table("files", kept, part)
            kept_n += kept.num_rows
            bytes_out += int(pc.sum(kept.column("size_bytes")).as_py() or 0)
            row_scores = pc.take(scored.column("score"), position)
            low_rows = table.filter(low)
            low_detail = [f"score={s:.4f} threshold={threshold}" for s in
                          pc.filter(row_scores, low).to_pylist()]
            quarantine = pa.concat_tables([
                _quarantine(low_rows, "low_quality_score", low_detail),
                _quarantine(table.filter(unscored), "unscored",
                            [f"no score in {cfg.scores_stage}"] * int(pc.sum(unscored).as_py() or 0)),
            ])
            stage.write_table("quarantine", quarantine, part)
            dropped_n += low_rows.num_rows
            unscored_n += quarantine.num_rows - low_rows.num_rows
        if unscored_n:
            log.warning("%d files of %s have no score in %s: quarantined as 'unscored'", unscored_n, cfg.input,
                        cfg.scores_stage)
        hist = language_histograms(scored, drop, cfg.histogram_bins)
        stage.write_bytes(HISTOGRAM, (json.dumps({"threshold": threshold, "mode": mode, **hist}, indent=2,
                                                 sort_keys=True) + "\n").encode())
        stage.stats.records_in, stage.stats.records_out = n_in, kept_n
        stage.stats.bytes_in, stage.stats.bytes_out = bytes_in, bytes_out
        stage.stats.drop("low_quality_score", dropped_n)
        if unscored_n:
            stage.stats.drop("unscored", unscored_n)
        stage.stats.metrics.update({
            "scorer_version": version, "threshold": threshold, "threshold_mode": mode,
            "drop_fraction_target": cfg.drop_fraction if mode == "quantile" else None,
            **decision_changes(before, set(dropped_ids.to_pylist()), ids),
            "dropped_share": round(dropped_n / n_in, 6) if n_in else 0.0,
            "dropped_share_by_language": {lang: h["dropped_share"] for lang, h in hist["languages"].items()},
            "score_quantiles": _quantiles(values), "histogram_file": HISTOGRAM})
        log.info("threshold %s (%s): kept %d, dropped %d (%.2f%%), unscored %d", threshold, mode, kept_n, dropped_n,
                 100 * dropped_n / max(n_in, 1), unscored_n)
    return lake.stats(snapshot, STAGE)


def decision_changes(before: tuple[str | None, set[str]] | None, dropped: set[str], ids: list[str]) -> dict:
    """How the keep/drop decisions on the scored files differ from the snapshot's previous quality filter.

    >>> decision_changes(("v1", {"a", "b"}), {"b", "c"}, ["a", "b", "c", "d"])
    {'previous_scorer_version': 'v1', 'decisions_changed': 2, 'decisions_changed_share': 0.5}
    >>> decision_changes(None, {"a"}, ["a"])
    {}
    """
    if before is None:
        return {}
    version, old = before
    changed = len((old ^ dropped) & set(ids))
    return {"previous_scorer_version": version, "decisions_changed": changed,
            "decisions_changed_share": round(changed / len(ids), 6) if ids else 0.0}


def _quarantine(rows: pa.Table, reason: str, details: list[str]) -> pa.Table:
    n = rows.num_rows
    return pa.Table.from_arrays(
        [rows.column(name) for name in FILES.names]
        + [pa.array([reason] * n, pa.string()), pa.array(details, pa.string()), pa.array([STAGE] * n, pa.string())],
        schema=QUARANTINE)


def language_histograms(scored: pa.Table, drop: np.ndarray, bins: int) -> dict:
    values = scored.column("score").to_numpy().astype(np.float64)
    langs = scored.column("language").to_pylist()
    groups: dict[str, list[int]] = defaultdict(list)
    for i, lang in enumerate(langs):
        groups[lang].append(i)
    out = {}
    for lang, rows in sorted(groups.items()):
        idx = np.array(rows)
        lang_drop = drop[idx]
        out[lang] = {"files": len(rows), "dropped": int(lang_drop.sum()),
                     "dropped_share": round(float(lang_drop.mean()), 6), "mean_score": round(float(values[idx].mean()), 4),
                     "hist_all": histogram(values[idx], bins), "hist_kept": histogram(values[idx][~lang_drop], bins),
                     "hist_dropped": histogram(values[idx][lang_drop], bins)}
    edges = [round(10.0 * b / bins, 6) for b in range(bins + 1)]
    return {"bin_edges": edges, "languages": out}


def _quantiles(values: np.ndarray) -> dict:
    if not len(values):
        return {}
    qs = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99]
    return {str(q): round(float(v), 4) for q, v in zip(qs, np.quantile(values, qs), strict=True)}


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(STAGE, "Drop the lowest-scored share of files (quality filter).")

    def body(args, cfg) -> int:
        run(cfg.open_lake(), args.snapshot, cfg.stage(STAGE, QualityFilterConfig))
        return 0

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    sys.exit(main())
