"""
### Evaluate a pretrained model: does it write code that runs?

Scheduled on the `pretrain` Asset (its extra names the release), or run by hand with the `release` param and,
optionally, a `model` (a Hugging Face model directory, or its URI in the lake) instead of the release's export.

`evaluate` (a GPU stage: a pod with one GPU on k8s, a `.venv-gpu` subprocess locally) generates completions with
vLLM (transformers as the fallback) and judges every one in the code sandbox (namespaces, rlimits, no network):

- **HumanEval** and **MBPP** (test split): pass@k with the unbiased estimator, `n` samples per task;
- **FIM**: single- and multi-line infilling cut from HumanEval's solutions, in the SPM layout the model trained
  on: exact match and pass@1;
- **held-out loss**: bits per byte per language on the repositories the dataset build held out of training.

Results (`results.json`, `results.md`, `results.svg`, every judged sample) are committed beside the model in the
lake; the headline numbers are in the task's XCom and the `evaluate` Asset event.
"""

from pathlib import Path

import pendulum
from airflow.sdk import Param, dag
from assets import EVALUATED, MODEL
from stage_launcher import PodResources, publish, release_params, resolve_release, stage_task

ONE_GPU = PodResources(cpu="8", memory="64Gi", gpus=1)


@dag(
    dag_id=Path(__file__).stem,
    schedule=[MODEL],
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=False,
    tags=["seedcoder", "evaluate", "gpu", "release"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    params={**release_params("from the triggering pretrain event"),
            "model": Param("", type="string", description="A Hugging Face model directory or its lake URI to "
                                                          "evaluate instead of the release's pretrain export.")},
    doc_md=__doc__,
)
def evaluate():
    release = resolve_release()
    # An empty --model= means the release's own export (the CLI reads it as "not given").
    judge = stage_task("evaluate", module="training.evaluate", runtime="gpu", resources=ONE_GPU,
                       partition="release", extra_args=["--model={{ params.model }}"])
    release >> judge >> publish(EVALUATED, "evaluate", partition="release")(release)


evaluate()
