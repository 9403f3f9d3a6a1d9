"""Typed, validated configuration: one YAML file per deployment profile (config/local.yaml, config/k8s.yaml).

Common sections (lake, spark) are typed here. Each stage owns a typed section under ``stages:`` and
validates it with its own pydantic model through :meth:`PlatformConfig.stage`, so adding a stage never
touches this module. ``${VAR}`` and ``${VAR:-default}`` in string values are expanded from the environment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "config"
PROFILE_ENV = "SEEDCODER_PROFILE"
CONFIG_ENV = "SEEDCODER_CONFIG"

T = TypeVar("T", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, not silently ignored typos."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LakeConfig(StrictModel):
    # Filesystem path (relative paths are relative to the repository root) or s3://bucket/prefix.
    root: str = ".lake"
    # S3 endpoint for non-AWS servers (SeaweedFS, MinIO); None means AWS.
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"

    @field_validator("s3_endpoint_url")
    @classmethod
    def _empty_is_aws(cls, value: str | None) -> str | None:
        return value or None


class SparkConfig(StrictModel):
    master: str = "local[2]"
    driver_memory: str = "4g"
    shuffle_partitions: int = Field(8, ge=1)
    # Extra Spark properties, passed as --conf / SparkSession.builder.config.
    conf: dict[str, str] = {}


class LauncherConfig(StrictModel):
    # Python interpreters of the local profile, per runtime (relative to the repository root).
    spark_python: str = ".venv/bin/python"
    gpu_python: str = ".venv-gpu/bin/python"


class ItemFailurePolicy(StrictModel):
    """How many items of one stage run may fail before the stage itself fails (top-level ``item_failures``)."""

    # Largest share of a stage's items that may fail with an unexpected error; above it the stage fails instead of
    # committing, because that many failures is a bug in the stage, not bad data.
    max_share: float = Field(0.01, ge=0, le=1)
    # Failures always tolerated, whatever the share: one bad item never fails a job, even a job of ten items.
    always_allowed: int = Field(1, ge=0)


class PlatformConfig(StrictModel):
    profile: Literal["local", "k8s"]
    lake: LakeConfig = LakeConfig()
    spark: SparkConfig = SparkConfig()
    launcher: LauncherConfig = LauncherConfig()
    # Per-item fault isolation (lake/faults.py): how many items of a stage may fail before the stage does.
    item_failures: ItemFailurePolicy = ItemFailurePolicy()
    stages: dict[str, dict[str, Any]] = {}
    source_path: str | None = None

    def stage(self, name: str, model: type[T]) -> T:
        """The typed section of stage ``name`` (defaults where the YAML is silent)."""
        try:
            return model.model_validate(self.stages.get(name) or {})
        except ValidationError as err:
            where = f"{self.source_path or 'config'}: stages.{name}"
            raise ConfigError(f"invalid configuration in {where}:\n{err}") from None

    def lake_root(self) -> str:
        root = self.lake.root
        if "://" in root or Path(root).is_absolute():
            return root
        return str(REPO_ROOT / root)

    def open_lake(self):
        from lake.stage import Lake

        return Lake.from_config(self)


class ConfigError(ValueError):
    pass


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, source: str) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(f"{source}: environment variable {name} is not set and has no default")

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, source) for v in value]
    return value


def default_config_path() -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return CONFIG_DIR / f"{os.environ.get(PROFILE_ENV, 'local')}.yaml"


def load_config(path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None) -> PlatformConfig:
    """Load and validate a profile's YAML; ``overrides`` are deep-merged on top (tests, CLI)."""
    path = Path(path) if path else default_config_path()
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist (set {CONFIG_ENV} or {PROFILE_ENV}=local|k8s)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    raw = _deep_merge(_expand(raw, str(path)), overrides or {})
    raw["source_path"] = str(path)
    try:
        return PlatformConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"invalid configuration in {path}:\n{err}") from None


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
