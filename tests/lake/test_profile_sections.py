"""The release-era sections of both profiles validate with the stages' own models (a typo fails here, not in a run)."""

import pytest

from lake.config import REPO_ROOT, load_config


@pytest.mark.parametrize("profile", ["local", "k8s"])
def test_release_dataset_pretrain_and_scorer_sections_validate(profile):
    from spark_jobs.dataset.build import DatasetBuildConfig
    from spark_jobs.dataset.tokenizer import TokenizerConfig
    from spark_jobs.release.stage import ReleaseConfig
    from training.pretrain.config import PretrainConfig
    from training.quality.config import QualityFilterConfig, ScoreConfig, TrainScorerConfig

    cfg = load_config(REPO_ROOT / "config" / f"{profile}.yaml")
    release = cfg.stage("release", ReleaseConfig)
    assert release.input_stage == "quality_filter"
    assert cfg.stage("tokenizer", TokenizerConfig).input == "release"
    assert cfg.stage("dataset_build", DatasetBuildConfig).input == "release"
    pretrain = cfg.stage("pretrain", PretrainConfig)
    assert pretrain.init == "auto" and pretrain.continue_phases
    assert cfg.stage("score", ScoreConfig).scorer_version
    assert cfg.stage("quality_filter", QualityFilterConfig).mode == "scorer"
    assert 0 < cfg.stage("train_scorer", TrainScorerConfig).drop_fraction < 1
