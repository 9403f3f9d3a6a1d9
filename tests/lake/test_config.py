import pytest

from lake.config import ConfigError, StrictModel, load_config


class Section(StrictModel):
    threshold: float = 0.5


def test_profiles_load_and_validate(monkeypatch):
    monkeypatch.delenv("SEEDCODER_LAKE_ROOT", raising=False)
    local = load_config("config/local.yaml")
    assert local.profile == "local" and local.lake_root().endswith(".lake")
    k8s = load_config("config/k8s.yaml")
    assert k8s.profile == "k8s" and k8s.lake_root().startswith("s3://")


def test_env_expansion_and_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("SEEDCODER_LAKE_ROOT", str(tmp_path))
    cfg = load_config("config/local.yaml", overrides={"stages": {"x": {"threshold": 0.9}}})
    assert cfg.lake_root() == str(tmp_path)
    assert cfg.stage("x", Section).threshold == 0.9
    assert cfg.stage("absent", Section).threshold == 0.5


def test_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: local\nlake: {rooot: x}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml[\s\S]*rooot"):
        load_config(bad)
    bad.write_text("profile: local\nstages: {x: {threshold: high}}\n")
    with pytest.raises(ConfigError, match=r"stages.x[\s\S]*threshold"):
        load_config(bad).stage("x", Section)
    bad.write_text("profile: local\nlake: {root: '${NOPE_NOT_SET}'}\n")
    with pytest.raises(ConfigError, match="NOPE_NOT_SET"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
