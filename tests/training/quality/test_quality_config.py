"""The quality stages' config sections validate in both profiles and keep their cross-stage invariants."""

import pytest

from lake.config import REPO_ROOT, ConfigError, load_config
from training.quality.config import OracleLabelConfig, QualityFilterConfig, ScoreConfig, TrainScorerConfig

SECTIONS = {"oracle_label": OracleLabelConfig, "train_scorer": TrainScorerConfig, "score": ScoreConfig,
            "quality_filter": QualityFilterConfig}


@pytest.mark.parametrize("profile", ["local", "k8s"])
def test_sections_validate_and_agree(profile):
    cfg = load_config(REPO_ROOT / "config" / f"{profile}.yaml")
    parts = {name: cfg.stage(name, model) for name, model in SECTIONS.items()}
    assert parts["train_scorer"].max_tokens == parts["score"].max_tokens, "score files as the scorer was trained"
    inputs = {parts["oracle_label"].input, parts["train_scorer"].input, parts["score"].input,
              parts["quality_filter"].input}
    assert len(inputs) == 1, "every quality stage must read the same filtered files"
    if profile == "local":
        assert parts["oracle_label"].oracle == "rules" and parts["train_scorer"].build_base_if_missing
    else:
        assert parts["oracle_label"].oracle == "openai" and len(parts["oracle_label"].languages) == 21
        assert parts["score"].backend == "vllm" and not parts["train_scorer"].build_base_if_missing


def test_typos_and_bad_values_are_rejected_with_the_section_named(make_config):
    with pytest.raises(ConfigError, match="stages.score"):
        make_config(stages={"score": {"max_tokenz": 10}}).stage("score", ScoreConfig)
    with pytest.raises(ConfigError, match="stages.quality_filter"):
        make_config(stages={"quality_filter": {"drop_fraction": 1.5}}).stage("quality_filter", QualityFilterConfig)
