"""The evaluate DAG: scheduled on the model, one GPU stage, the `model` param reaching the stage's command line
(local subprocess and k8s pod alike), and the Asset event carrying the headline numbers."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wiring_schedule_and_outlet():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags")).dags["evaluate"]
    for upstream, downstream in (("release", "evaluate"), ("evaluate", "publish_evaluate")):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    assert [a.uri for a in dag.timetable.asset_condition.objects] == ["seedcoder://lake/pretrain"]
    assert [o.uri for o in dag.get_task("publish_evaluate").outlets] == ["seedcoder://lake/evaluate"]
    task = dag.get_task("evaluate")
    assert task.module == "training.evaluate" and task.runtime == "gpu"
    assert task.extra_args == ["--model={{ params.model }}"] and dag.params["model"] == ""


def test_the_model_param_reaches_the_k8s_pod_rendered_from_a_run_context():
    code = """
import json, pendulum
from airflow.dag_processing.dagbag import DagBag
from kubernetes.client import ApiClient
dag = DagBag(dag_folder="dags").dags["evaluate"]
op = dag.get_task("evaluate")
class TI:
    dag_id, task_id, map_index, try_number = "evaluate", "evaluate", -1, 1
    def xcom_pull(self, task_ids=None, **kw):
        return "2026-10"
context = {"ti": TI(), "run_id": "manual__2026-10", "dag": dag, "task": op,
           "params": {"release": "2026-10", "model": "s3://lake/lake/release=2026-10/pretrain/attempt=a/hf"}}
op.render_template_fields(context)
pod = ApiClient().sanitize_for_serialization(op.build_pod_request_obj(context, dry_run=True))
container = pod["spec"]["containers"][0]
print(json.dumps({"type": type(op).__name__, "pool": op.pool, "cmd": container["command"] + container["args"],
                  "gpu": container["resources"]["limits"].get("nvidia.com/gpu")}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(SEEDCODER_PROFILE="k8s", AIRFLOW_HOME=str(REPO / ".work" / "airflow-tests"),
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "plugins"), str(REPO / "dags")]))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    pod = json.loads(out.stdout.strip().splitlines()[-1])
    assert pod["type"] == "StagePodOperator" and pod["pool"] == "gpu" and pod["gpu"] == "1"
    assert pod["cmd"] == ["python", "-m", "training.evaluate", "--release", "2026-10",
                          "--model=s3://lake/lake/release=2026-10/pretrain/attempt=a/hf"]


def test_the_stage_cli_reads_an_empty_model_as_the_release_export(tmp_path):
    """`--model=` (the param left empty) means the release's own export: a missing one is a clear error."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"profile": "local", "lake": {"root": str(tmp_path / "lake")}}))
    gpu = REPO / ".venv-gpu" / "bin" / "python"
    python = str(gpu) if gpu.exists() else sys.executable
    out = subprocess.run([python, "-m", "training.evaluate", "--release", "r1", "--config", str(cfg), "--model="],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "stage 'pretrain' has no committed output for release 'r1'" in out.stderr
    out = subprocess.run([python, "-m", "training.evaluate", "--release", "r1", "--config", str(cfg),
                          f"--model={tmp_path}/nothing"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "neither a directory here nor a location in the lake" in out.stderr
