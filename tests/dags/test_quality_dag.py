"""The quality DAG: its wiring, its GPU pods on the k8s profile, and a real dag.test() run on the local profile."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lake.stage import Lake
from tests.training.quality.corpus import commit_input, disk_files, files_table

REPO = Path(__file__).resolve().parents[2]
STAGES = ["oracle_label", "train_scorer", "score", "quality_filter"]


def test_stages_run_in_chain_order_and_publish_curated():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags")).dags["quality"]
    order = ["snapshot", *STAGES, "publish_quality_filter"]
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    assert [a.uri for a in dag.timetable.asset_condition.objects] == ["seedcoder://lake/filters"]
    outlets = [o.uri for o in dag.get_task("publish_quality_filter").outlets]
    assert outlets == ["seedcoder://lake/quality_filter"]
    for stage in STAGES:
        assert dag.get_task(stage).module == f"training.quality.{stage}"
    assert [dag.get_task(s).runtime for s in STAGES] == ["gpu", "gpu", "gpu", "python"]


def test_k8s_profile_makes_gpu_pods_for_the_gpu_stages():
    code = """
import json
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder="dags").dags["quality"]
out = {}
for tid in ["oracle_label", "train_scorer", "score", "quality_filter"]:
    t = dag.get_task(tid)
    limits = t.container_resources.limits
    out[tid] = {"type": type(t).__name__, "gpu": limits.get("nvidia.com/gpu"), "pool": t.pool,
                "deferrable": t.deferrable, "cmd": t.cmds + t.arguments}
print(json.dumps(out))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(SEEDCODER_PROFILE="k8s", AIRFLOW_HOME=str(REPO / ".work" / "airflow-tests"),
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "plugins"), str(REPO / "dags")]))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    pods = json.loads(out.stdout.strip().splitlines()[-1])
    for stage in ["oracle_label", "train_scorer", "score"]:
        assert pods[stage]["type"] == "KubernetesPodOperator" and pods[stage]["gpu"] == "1"
        assert pods[stage]["pool"] == "gpu" and pods[stage]["deferrable"]
        assert pods[stage]["cmd"][:3] == ["python", "-m", f"training.quality.{stage}"]
    assert pods["quality_filter"]["gpu"] is None and pods["quality_filter"]["pool"] != "gpu"


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_quality_dag_runs_the_four_stages_and_publishes(tmp_path):
    if not (REPO / ".venv-gpu" / "bin" / "python").exists():
        pytest.skip(".venv-gpu (torch, transformers) is not installed")
    lake = Lake.at(str(tmp_path / "lake"))
    commit_input(lake, "2026-10", files_table(disk_files(n_python=40, n_c=10, n_json=8)))
    home = tmp_path / "airflow"
    cfg = tmp_path / "local.yaml"
    cfg.write_text(json.dumps({"profile": "local", "lake": {"root": str(tmp_path / "lake")}, "stages": {
        "oracle_label": {"sample_size": 48, "shard_size": 16},
        "train_scorer": {"base_model": str(tmp_path / "base"), "max_tokens": 64, "test_fraction": 0.2},
        "score": {"backend": "transformers", "max_tokens": 64, "shard_rows": 16},
        "quality_filter": {"drop_fraction": 0.1}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(SEEDCODER_CONFIG=str(cfg), SEEDCODER_PROFILE="local", AIRFLOW_HOME=str(home),
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db")
    out = subprocess.run([sys.executable, "scripts/pipeline.py", "--snapshot", "2026-10", "--dags", "quality",
                          "--airflow-home", str(home)], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=1400)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "DAG quality" in out.stdout and "success" in out.stdout
    labels = lake.stats("2026-10", "oracle_label")
    assert labels["metrics"]["oracle"].startswith("rules:") and not labels["metrics"]["oracle_is_llm"]
    assert "mae_heldout" in lake.stats("2026-10", "train_scorer")["metrics"]
    scored = lake.stats("2026-10", "score")
    kept = lake.stats("2026-10", "quality_filter")
    assert scored["records_out"] == kept["records_in"] == 63
    assert kept["drop_reasons"]["low_quality_score"] == 6 and kept["metrics"]["dropped_share"] == round(6 / 63, 6)
    assert kept["metrics"]["threshold"] is not None
