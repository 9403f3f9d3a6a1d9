"""The ablation DAG: the arm and seed reach every stage's command line as config overrides, on the local profile
(rendered from a run context) and on the k8s profile (Spark submit of the cut and the build, the pretrain Indexed
Job, the evaluate pod)."""

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
        return {"base_snapshots": "2026-09,2026-10"}.get(task_ids, "demo.no_quality_filter.s2")
params = {"release": "demo", "arm": "no_quality_filter", "seed": 2}
out = {}
for task in dag.tasks:
    if task.task_id in ("release", "base_snapshots", "cut_or_reuse", "publish_evaluate", "pretrain_service"):
        continue
    context = {"ti": TI(task.task_id), "run_id": "manual__x", "dag": dag, "task": task, "params": params,
               "arm_inputs": dag.user_defined_macros["arm_inputs"]}
    task.render_template_fields(context, jinja_env=dag.get_template_env())
    if hasattr(task, "shape"):  # the Indexed Job takes its command from the stage's k8s section when it runs
        task.shape(task.launch())
    args = next(getattr(task, attr) for attr in ("extra_args", "application_args", "arguments") if hasattr(task, attr))
    out[task.task_id] = {"type": type(task).__name__, "args": args, "trigger_rule": getattr(task.trigger_rule, "value", task.trigger_rule),
                         "upstream": sorted(task.upstream_task_ids),
                       "env": {e.name: e.value for e in getattr(task, "env_vars", None) or [] if e.value}}
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
    return " ".join(args) if isinstance(args, list) else str(args or "")


def test_local_profile_passes_the_arm_to_every_stage():
    tasks = rendered("local")
    assert {t["type"] for t in tasks.values()} == {"LocalStageOperator"}
    assert flat(tasks["cut_release"]["args"]) == ("--snapshots 2026-09,2026-10 --tokenizer pin --tokenizer-from demo "
                                                  "--set stages.release.input_stage=pii_redact")
    # a run that finds the arm's release already cut skips the cut and goes on with its tokenizer
    assert tasks["tokenizer"]["upstream"] == ["cut_or_reuse", "cut_release"]
    assert tasks["tokenizer"]["trigger_rule"] == "none_failed_min_one_success"
    assert flat(tasks["dataset_build"]["args"]) == "--set stages.dataset_build.seed=2"
    assert flat(tasks["pretrain"]["args"]) == "--set stages.pretrain.seed=2 --init scratch"
    assert flat(tasks["evaluate"]["args"]) == "--set stages.evaluate.bpb.release=demo"


def test_k8s_profile_passes_the_arm_to_the_submit_the_job_and_the_pod():
    tasks = rendered("k8s")
    assert tasks["cut_release"]["type"] == tasks["dataset_build"]["type"] == "StageSparkSubmitOperator"
    assert tasks["pretrain"]["type"] == "DistributedJobOperator"
    assert tasks["evaluate"]["type"] == "StagePodOperator"
    assert "--release demo.no_quality_filter.s2" in flat(tasks["cut_release"]["args"])
    assert "stages.release.input_stage=pii_redact" in flat(tasks["cut_release"]["args"])
    assert "--release demo.no_quality_filter.s2 --set stages.dataset_build.seed=2" in flat(tasks["dataset_build"]["args"])
    assert ('-m training.pretrain --release "${SEEDCODER_PARTITION_IDS}" --set stages.pretrain.seed=2 --init scratch'
            in flat(tasks["pretrain"]["args"]))
    assert tasks["pretrain"]["env"]["SEEDCODER_PARTITION_IDS"] == "demo.no_quality_filter.s2"
    assert "stages.evaluate.bpb.release=demo" in flat(tasks["evaluate"]["args"])
