"""The pretrain DAG runs with dag.test() on the local profile: the stage task starts the DeepSpeed launcher on
CPU in .venv-gpu, trains the tiny preset on packed shards, commits, and the MODEL Asset is published."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lake.stage import Lake
from tests.training.pretrain.pretrain_lake import build_shards, pretrain_section

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_pretrain_dag_trains_and_publishes(tmp_path):
    if not (REPO / ".venv-gpu" / "bin" / "python").exists():
        pytest.skip(".venv-gpu (torch, deepspeed) is not installed")
    lake = Lake.at(str(tmp_path / "lake"))
    build_shards(lake, "2026-10")
    home = tmp_path / "airflow"
    cfg = tmp_path / "local.yaml"
    section = pretrain_section(scratch_dir=str(tmp_path / "scratch"),
                               phases=[{"name": "regular", "steps": 30, "lr": 3e-3}])
    cfg.write_text(json.dumps({"profile": "local", "lake": {"root": str(tmp_path / "lake")},
                               "stages": {"pretrain": section}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "RANK"}
    env.update(SEEDCODER_CONFIG=str(cfg), SEEDCODER_PROFILE="local", AIRFLOW_HOME=str(home),
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db")
    out = subprocess.run([sys.executable, "scripts/pipeline.py", "--snapshot", "2026-10", "--dags", "pretrain",
                          "--airflow-home", str(home)], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "DAG pretrain" in out.stdout and "success" in out.stdout
    stats = lake.stats("2026-10", "pretrain")
    assert stats["records_out"] == 30
    assert stats["metrics"]["loss_last"] < stats["metrics"]["loss_first"]
    assert "hf" in lake.require("2026-10", "pretrain").datasets
