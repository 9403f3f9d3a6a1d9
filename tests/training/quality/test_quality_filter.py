"""Stage quality_filter: exact bottom share, fixed threshold, unscored files, histograms, determinism."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from lake.stage import StageRun
from tests.training.quality.conftest import SNAPSHOT
from training.quality import quality_filter
from training.quality.config import QualityFilterConfig
from training.quality.records import SCORES


def commit_scores(lake, corpus, *, skip: int = 0, input_attempt: str | None = None, dup: bool = False,
                  version: str | None = None) -> dict:
    """Scores written as the score stage would (a deterministic function of the id), minus ``skip`` files."""
    ids = corpus.column("id").to_pylist()[skip:]
    langs = corpus.column("language").to_pylist()[skip:]
    values = [float(np.float32((int(i[:6], 16) % 1000) / 100.0)) for i in ids]  # as stored: float32
    if dup:
        ids, langs, values = ids + ids[:1], langs + langs[:1], values + values[:1]
    table = pa.table({"id": ids, "language": langs, "score": pa.array(values, pa.float32()),
                      "num_tokens": pa.array([10] * len(ids), pa.int32()),
                      "truncated": [False] * len(ids)}, schema=SCORES)
    attempt = input_attempt or lake.require(SNAPSHOT, "pii_redact").attempt
    with StageRun(lake, SNAPSHOT, "score", params={"input_attempt": attempt, "scorer_version": version}) as run:
        run.write_table("scores", table, 0)
    return dict(zip(ids, values, strict=True))


def outputs(lake):
    kept = lake.read_table(SNAPSHOT, "quality_filter", "files")
    quarantine = lake.read_table(SNAPSHOT, "quality_filter", "quarantine")
    return kept, quarantine


def test_drops_exactly_the_bottom_share_and_records_why(input_lake, corpus):
    scores = commit_scores(input_lake, corpus)
    stats = quality_filter.run(input_lake, SNAPSHOT, QualityFilterConfig(mode="quantile", drop_fraction=0.1))
    kept, quarantine = outputs(input_lake)
    n = corpus.num_rows
    assert quarantine.num_rows == n // 10 == stats["drop_reasons"]["low_quality_score"]
    assert kept.num_rows + quarantine.num_rows == n == stats["records_in"]
    assert kept.schema.equals(corpus.schema)
    threshold = stats["metrics"]["threshold"]
    assert max(scores[i] for i in quarantine.column("id").to_pylist()) <= threshold
    assert min(scores[i] for i in kept.column("id").to_pylist()) >= threshold
    assert stats["metrics"]["dropped_share"] == pytest.approx((n // 10) / n)
    assert set(quarantine.column("reason").to_pylist()) == {"low_quality_score"}
    assert all(d.startswith("score=") for d in quarantine.column("detail").to_pylist())
    assert set(quarantine.column("stage").to_pylist()) == {"quality_filter"}


def test_histogram_file_sits_beside_the_stats(input_lake, corpus):
    commit_scores(input_lake, corpus)
    stats = quality_filter.run(input_lake, SNAPSHOT, QualityFilterConfig(mode="quantile", histogram_bins=10))
    prefix = input_lake.require(SNAPSHOT, "quality_filter").prefix
    hist = json.loads(input_lake.storage.read_bytes(f"{prefix}/{quality_filter.HISTOGRAM}"))
    assert input_lake.storage.exists(f"{prefix}/_stats.json")
    assert hist["threshold"] == stats["metrics"]["threshold"] and len(hist["bin_edges"]) == 11
    langs = hist["languages"]
    assert set(langs) == set(corpus.column("language").to_pylist())
    for h in langs.values():
        assert sum(h["hist_all"]) == h["files"]
        assert np.array_equal(np.add(h["hist_kept"], h["hist_dropped"]), h["hist_all"])
    assert sum(h["dropped"] for h in langs.values()) == stats["drop_reasons"]["low_quality_score"]


def test_fixed_threshold_and_determinism(input_lake, corpus):
    scores = commit_scores(input_lake, corpus)
    stats = quality_filter.run(input_lake, SNAPSHOT, QualityFilterConfig(mode="fixed", threshold=5.0))
    _kept, quarantine = outputs(input_lake)
    assert sorted(quarantine.column("id").to_pylist()) == sorted(i for i, s in scores.items() if s < 5.0)
    assert stats["metrics"]["threshold_mode"] == "fixed"
    first = outputs(input_lake)
    quality_filter.run(input_lake, SNAPSHOT, QualityFilterConfig(mode="fixed", threshold=5.0))
    assert all(a.equals(b) for a, b in zip(first, outputs(input_lake), strict=True))


def test_unscored_files_are_quarantined_not_silently_kept(input_lake, corpus):
    commit_scores(input_lake, corpus, skip=3)
    stats = quality_filter.run(input_lake, SNAPSHOT, QualityFilterConfig(mode="quantile"))
    _kept, quarantine = outputs(input_lake)
    unscored = quarantine.filter(pa.compute.equal(quarantine.column("reason"), "unscored"))
    assert sorted(unscored.column("id").to_pylist()) == sorted(corpus.column("id").to_pylist()[:3])
    assert stats["drop_reasons"]["unscored"] == 3


def test_scores_of_another_input_commit_or_duplicates_are_refused(input_lake, corpus):
    commit_scores(input_lake, corpus, input_attempt="some-older-attempt")
    with pytest.raises(ValueError, match="rerun score"):
        quality_filter.run(input_lake, SNAPSHOT, QualityFilterConfig(mode="quantile"))
    commit_scores(input_lake, corpus, dup=True)
    with pytest.raises(ValueError, match="duplicate"):
        quality_filter.run(input_lake, SNAPSHOT, QualityFilterConfig(mode="quantile"))
    assert input_lake.commit_info(SNAPSHOT, "quality_filter") is None


def test_bottom_share_breaks_ties_by_id():
    values = np.array([1.0, 1.0, 1.0, 2.0])
    threshold, drop = quality_filter.bottom_share(values, ["c", "a", "b", "d"], 0.5)
    assert threshold == 1.0 and drop.tolist() == [False, True, True, False]
    assert quality_filter.bottom_share(values, list("abcd"), 0.0)[1].sum() == 0


def test_an_empty_snapshot_commits_empty_outputs(lake, corpus):
    from tests.training.quality.corpus import commit_input

    commit_input(lake, SNAPSHOT, corpus.slice(0, 0), parts=1)
    commit_scores(lake, corpus.slice(0, 0))
    stats = quality_filter.run(lake, SNAPSHOT, QualityFilterConfig(mode="quantile"))
    assert stats["records_in"] == stats["records_out"] == 0 and stats["metrics"]["threshold"] is None
    assert outputs(lake)[0].num_rows == 0


def publish_scorer(lake, version: str, threshold: float) -> None:
    """A scorer version as train_scorer publishes it (only its card matters to the filter)."""
    from training.quality import versions

    with StageRun(lake, versions.partition(version), versions.TRAIN_STAGE) as run:
        run.write_bytes(f"model/{versions.CARD}", json.dumps({"version": version, "threshold": threshold}).encode())


def test_a_monthly_run_applies_the_pinned_scorers_fixed_threshold_and_counts_changed_decisions(input_lake, corpus):
    publish_scorer(input_lake, "v1", 5.0)
    publish_scorer(input_lake, "v2", 6.0)
    scores = commit_scores(input_lake, corpus, version="v1")
    stats = quality_filter.run(input_lake, SNAPSHOT, QualityFilterConfig())
    _kept, quarantine = outputs(input_lake)
    # Not a quantile of this snapshot: exactly the files below the version's own threshold.
    assert sorted(quarantine.column("id").to_pylist()) == sorted(i for i, s in scores.items() if s < 5.0)
    m = stats["metrics"]
    assert (m["threshold_mode"], m["scorer_version"], m["threshold"]) == ("scorer", "v1", 5.0)
    assert "decisions_changed" not in m
    # The same snapshot scored by v2 (same scores here, a higher threshold): the changed decisions are counted.
    commit_scores(input_lake, corpus, version="v2")
    again = quality_filter.run(input_lake, SNAPSHOT, QualityFilterConfig())["metrics"]
    changed = sum(5.0 <= s < 6.0 for s in scores.values())
    assert again["previous_scorer_version"] == "v1" and again["decisions_changed"] == changed > 0
    assert again["decisions_changed_share"] == round(changed / len(scores), 6)


def test_scorer_mode_needs_a_versioned_scorer(input_lake, corpus):
    commit_scores(input_lake, corpus)  # scored with a model given by path
    with pytest.raises(ValueError, match="no calibrated threshold"):
        quality_filter.run(input_lake, SNAPSHOT, QualityFilterConfig())
    with pytest.raises(ValueError, match="needs a threshold"):
        QualityFilterConfig(mode="fixed")
