"""Stage train_scorer: a Llama + regression head learns the labels; HF-format output; deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from lake.stage import Partition  # noqa: E402
from tests.training.quality.conftest import SNAPSHOT, VERSION  # noqa: E402
from training.quality import oracle_label, train_scorer, versions  # noqa: E402
from training.quality.config import OracleLabelConfig, TrainScorerConfig  # noqa: E402

V1 = Partition.scorer(VERSION)


@pytest.fixture
def labelled_lake(input_lake):
    oracle_label.run(input_lake, VERSION, SNAPSHOT, OracleLabelConfig(sample_size=64, shard_size=64))
    return input_lake


def train(lake, base, version=VERSION, **kw):
    cfg = TrainScorerConfig(base_model=str(base), build_base_if_missing=False, max_tokens=64, batch_size=8,
                            test_fraction=0.2, learning_rate=1e-3, warmup_steps=2, calibration_size=30, **kw)
    return train_scorer.run(lake, version, cfg)


@pytest.mark.timeout(600)
def test_scorer_is_saved_in_hf_format_with_provenance_and_a_heldout_mae(labelled_lake, tiny_base):
    import torch
    from transformers import AutoModelForSequenceClassification

    stats = train(labelled_lake, tiny_base)
    m = stats["metrics"]
    assert m["n_train"] + m["n_heldout"] == stats["records_in"] == 64
    assert m["steps"] == -(-m["n_train"] // 8) and m["oracle"] == "rules:rules-v1"
    assert 0 <= m["mae_heldout"] <= 10 and m["mae_predict_train_mean"] >= 0
    model_dir = Path(labelled_lake.root) / labelled_lake.require(V1, "train_scorer").prefix / "model"
    assert str(model_dir).endswith(f"models/scorer/{VERSION}/train_scorer/attempt={stats['attempt']}/model")
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32)
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"
    assert model.config.architectures == ["LlamaForSequenceClassification"]
    card = json.loads((model_dir / "scorer.json").read_text())
    assert card == versions.card(labelled_lake, VERSION)
    assert card["version"] == VERSION and card["max_tokens"] == 64 and card["mae_heldout"] == m["mae_heldout"]
    assert card["labels"]["oracle"] == "rules:rules-v1" and card["labels"]["snapshot"] == SNAPSHOT
    assert card["labels"]["count"] == 64 and card["base_model"] == str(tiny_base)
    # The threshold is fixed now, on files the scorer was not trained on: the bottom 10% of their scores.
    calibration = labelled_lake.read_table(V1, "train_scorer", "calibration")
    assert calibration.num_rows == card["calibration"]["files"] == 30 == m["calibration_files"]
    scores = np.sort(np.array(calibration.column("score").to_pylist()))
    assert card["threshold"] == pytest.approx(scores[3], abs=1e-5) == m["threshold"]
    heldout = labelled_lake.read_table(V1, "train_scorer", "heldout")
    assert heldout.num_rows == m["n_heldout"]
    mae = np.mean(np.abs(np.array(heldout.column("prediction").to_pylist())
                         - np.array(heldout.column("label").to_pylist())))
    assert mae == pytest.approx(m["mae_heldout"], abs=1e-3)

    # A version is immutable; a new version on the same labels and base trains to the very same numbers.
    with pytest.raises(versions.ScorerVersionExists, match="versions are immutable"):
        train(labelled_lake, tiny_base)
    with pytest.raises(versions.ScorerVersionExists):
        oracle_label.run(labelled_lake, VERSION, SNAPSHOT, OracleLabelConfig(sample_size=8))
    oracle_label.reuse_labels(labelled_lake, "v2", VERSION)
    again = train(labelled_lake, tiny_base, version="v2")["metrics"]
    assert again["mae_heldout"] == m["mae_heldout"] and again["mse_last"] == m["mse_last"]
    assert again["threshold"] == m["threshold"] and again["labels_from"] == VERSION


def test_too_few_labels_is_a_clear_error(input_lake, tiny_base):
    oracle_label.run(input_lake, VERSION, SNAPSHOT, OracleLabelConfig(sample_size=1))
    with pytest.raises(ValueError, match="need at least 2"):
        train(input_lake, tiny_base)


def test_missing_base_without_build_is_a_clear_error(labelled_lake, tmp_path):
    with pytest.raises(FileNotFoundError, match="base checkpoint"):
        train(labelled_lake, tmp_path / "nowhere")


def test_lr_schedule_warms_up_then_decays():
    lrs = [train_scorer.lr_at(s, 50, 1.0, 5) for s in range(50)]
    assert lrs[4] == 1.0 and all(a < b for a, b in zip(lrs[:4], lrs[1:5], strict=True))
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:], strict=False)) and lrs[-1] >= 0.1
