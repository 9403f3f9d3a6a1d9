"""The ablation DAG: the arm and seed reach every stage's command line as config overrides, on the local profile
(rendered from a run context) and on the k8s profile (Spark submit, the pretrain Indexed Job, the evaluate pod)."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

RENDER = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder="dags")
assert not bag.import_errors, bag.import_errors
dag = bag.dags["ablation"]
class TI:
    dag_id, map_index, try_number = "ablation", -1, 1
    def __init__(self, task_id): self.task_id = task_id
    def xcom_pull(self, task_ids=None, **kw):
        return "demo.no_quality_filter.s2"
params = {"snapshot": "demo", "arm": "no_quality_filter", "seed": 2}
out = {}
for task in dag.tasks:
    if task.task_id in ("snapshot", "publish_evaluate", "pretrain_service"):
        continue
    context = {"ti": TI(task.task_id), "run_id": "manual__x", "dag": dag, "task": task, "params": params,
               "arm_inputs": dag.user_defined_macros["arm_inputs"]}
    task.render_template_fields(context, jinja_env=dag.get_template_env())
    args = getattr(task, "extra_args", None) or getattr(task, "application_args", None) or task.arguments
    out[task.task_id] = {"type": type(task).__name__, "args": args}
print(json.dumps(out))
"""


def rendered(profile: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(SEEDCODER_PROFILE=profile, AIRFLOW_HOME=str(REPO / ".work" / "airflow-tests"),
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "plugins"), str(REPO / "dags")]))
    out = subprocess.run([sys.executable, "-c", RENDER], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def flat(args) -> str:
    return " ".join(args) if isinstance(args, list) else str(args)


def test_local_profile_passes_the_arm_to_every_stage():
    tasks = rendered("local")
    assert {t["type"] for t in tasks.values()} == {"LocalStageOperator"}
    build = flat(tasks["dataset_build"]["args"])
    for expected in ("stages.dataset_build.input_snapshot=demo", "stages.dataset_build.input=pii_redact",
                     "stages.dataset_build.tokenizer_snapshot=demo", "stages.dataset_build.seed=2"):
        assert expected in build
    assert "stages.pretrain.seed=2" in flat(tasks["pretrain"]["args"])
    assert "stages.evaluate.bpb.snapshot=demo" in flat(tasks["evaluate"]["args"])


def test_k8s_profile_passes_the_arm_to_the_submit_the_job_and_the_pod():
    tasks = rendered("k8s")
    assert tasks["dataset_build"]["type"] == "SparkSubmitOperator"
    assert tasks["pretrain"]["type"] == "KubernetesJobOperator"
    assert tasks["evaluate"]["type"] == "KubernetesPodOperator"
    assert "stages.dataset_build.input=pii_redact" in flat(tasks["dataset_build"]["args"])
    assert "--snapshot demo.no_quality_filter.s2" in flat(tasks["dataset_build"]["args"])
    assert "stages.pretrain.seed=2" in flat(tasks["pretrain"]["args"])
    assert "stages.evaluate.bpb.snapshot=demo" in flat(tasks["evaluate"]["args"])
