"""The scorer and quality DAGs: wiring, GPU pods on the k8s profile, and real dag.test() runs on the local profile."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lake.stage import Lake, Partition
from tests.training.quality.corpus import commit_input, disk_files, files_table

REPO = Path(__file__).resolve().parents[2]
SCORER_STAGES = ["oracle_label", "train_scorer"]
QUALITY_STAGES = ["score", "quality_filter"]
STAGES = SCORER_STAGES + QUALITY_STAGES


def test_stages_run_in_chain_order_and_publish():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    for dag_id, resolver, stages, publish, asset in (
            ("scorer", "scorer", SCORER_STAGES, "publish_train_scorer", "seedcoder://lake/models/scorer"),
            ("quality", "snapshot", QUALITY_STAGES, "publish_quality_filter", "seedcoder://lake/quality_filter")):
        dag = bag.dags[dag_id]
        order = [resolver, *stages, publish]
        for upstream, downstream in zip(order, order[1:], strict=False):
            assert downstream in dag.get_task(upstream).downstream_task_ids
        assert [o.uri for o in dag.get_task(publish).outlets] == [asset]
        for stage in stages:
            assert dag.get_task(stage).module == f"training.quality.{stage}"
    assert [a.uri for a in bag.dags["quality"].timetable.asset_condition.objects] == ["seedcoder://lake/filters"]
    assert bag.dags["scorer"].timetable.asset_condition is None, "a scorer version is made when a user asks"
    assert [bag.dags["scorer"].get_task(s).partition for s in SCORER_STAGES] == ["scorer", "scorer"]
    assert [bag.dags[d].get_task(s).runtime for d, s in zip(["scorer"] * 2 + ["quality"] * 2, STAGES,
                                                            strict=True)] == ["gpu", "gpu", "gpu", "python"]


def test_k8s_profile_makes_gpu_pods_for_the_gpu_stages():
    code = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder="dags")
out = {}
for dag_id, tid in [("scorer", "oracle_label"), ("scorer", "train_scorer"), ("quality", "score"),
                    ("quality", "quality_filter")]:
    t = bag.dags[dag_id].get_task(tid)
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
        assert pods[stage]["type"] == "StagePodOperator" and pods[stage]["gpu"] == "1"
        assert pods[stage]["pool"] == "gpu" and pods[stage]["deferrable"]
        assert pods[stage]["cmd"][:3] == ["python", "-m", f"training.quality.{stage}"]
    assert pods["train_scorer"]["cmd"][3:5] == ["--version", "{{ ti.xcom_pull(task_ids='scorer') }}"]
    assert pods["score"]["cmd"][3:5] == ["--snapshot", "{{ ti.xcom_pull(task_ids='snapshot') }}"]
    assert pods["quality_filter"]["gpu"] is None and pods["quality_filter"]["pool"] != "gpu"


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_scorer_then_quality_dags_make_a_version_and_apply_its_threshold(tmp_path):
    if not (REPO / ".venv-gpu" / "bin" / "python").exists():
        pytest.skip(".venv-gpu (torch, transformers) is not installed")
    lake = Lake.at(str(tmp_path / "lake"))
    commit_input(lake, "2026-10", files_table(disk_files(n_python=40, n_c=10, n_json=8)))
    home = tmp_path / "airflow"
    cfg = tmp_path / "local.yaml"
    cfg.write_text(json.dumps({"profile": "local", "lake": {"root": str(tmp_path / "lake")}, "stages": {
        "oracle_label": {"sample_size": 48, "shard_size": 16},
        "train_scorer": {"base_model": str(tmp_path / "base"), "max_tokens": 64, "test_fraction": 0.2,
                         "calibration_size": 40},
        "score": {"backend": "transformers", "max_tokens": 64, "shard_rows": 16}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(SEEDCODER_CONFIG=str(cfg), SEEDCODER_PROFILE="local", AIRFLOW_HOME=str(home),
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db")
    out = subprocess.run([sys.executable, "scripts/pipeline.py", "--snapshot", "2026-10", "--dags", "scorer,quality",
                          "--airflow-home", str(home)], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=1400)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "DAG scorer" in out.stdout and "DAG quality" in out.stdout and "success" in out.stdout
    v1 = Partition.scorer("v1")
    labels = lake.stats(v1, "oracle_label")
    assert labels["metrics"]["oracle"].startswith("rules:") and not labels["metrics"]["oracle_is_llm"]
    assert labels["metrics"]["snapshot"] == "2026-10"
    trained = lake.stats(v1, "train_scorer")["metrics"]
    assert "mae_heldout" in trained and trained["calibration_files"] > 0
    scored = lake.stats("2026-10", "score")
    kept = lake.stats("2026-10", "quality_filter")
    assert scored["records_out"] == kept["records_in"] == 63 and scored["metrics"]["scorer_version"] == "v1"
    metrics = kept["metrics"]
    assert (metrics["threshold_mode"], metrics["scorer_version"]) == ("scorer", "v1")
    assert metrics["threshold"] == trained["threshold"], "the version's threshold, fixed at training time"
    scores = lake.read_table("2026-10", "score", "scores").column("score").to_pylist()
    assert kept["drop_reasons"].get("low_quality_score", 0) == sum(s < trained["threshold"] for s in scores)
    assert "Scorer 'v1': held-out MAE" in out.stdout
    # A second run of the scorer DAG for v1 is skipped by the pipeline: versions are immutable.
    again = subprocess.run([sys.executable, "scripts/pipeline.py", "--snapshot", "2026-10", "--dags", "scorer",
                            "--airflow-home", str(home)], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0 and "scorer v1 exists" in again.stdout, again.stdout[-2000:]
