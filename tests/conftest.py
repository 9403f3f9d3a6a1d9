"""Shared fixtures: a throw-away lake and config, and one Spark session per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
# Airflow reads its configuration at import: point it at this repository and a throw-away home first.
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".work" / "airflow-tests"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


@pytest.fixture
def lake_root(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    root.mkdir()
    return root


@pytest.fixture
def make_config(lake_root: Path):
    """``make_config(stages={...})`` -> a validated local PlatformConfig whose lake is this test's tmp dir."""
    from lake.config import load_config

    def make(**overrides):
        base = {"lake": {"root": str(lake_root)}}
        for key, value in overrides.items():
            base[key] = value
        return load_config(REPO / "config" / "local.yaml", overrides=base)

    return make


@pytest.fixture
def config(make_config):
    return make_config()


@pytest.fixture(scope="session")
def spark():
    """One local[2] Spark session for the whole test session (start-up costs ~10 s)."""
    from lake.config import load_config
    from spark_jobs.session import spark_session

    cfg = load_config(REPO / "config" / "local.yaml", overrides={"spark": {"shuffle_partitions": 4,
                                                                             "driver_memory": "2g"}})
    session = spark_session(cfg, "seedcoder-tests")
    yield session
    session.stop()
