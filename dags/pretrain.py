"""
### Pretrain a code model on a release's packed token shards

Scheduled on the `dataset` Asset (its extra names the release), or run by hand with the `release` param. Never on a
monthly crawl: a release is cut by a user (the `release` DAG), and only its dataset build triggers training.
`pretrain` trains the Llama-structured model of `stages.pretrain.preset` with DeepSpeed on the committed shards of
the release's `dataset_build`, checkpoints to the lake, and exports a Hugging Face model (transformers and vLLM
load it; FIM prompts in SPM form). From scratch it follows the Seed-Coder phase schedule (warmup, 3e-4,
3e-4/sqrt(10), 3e-5; 8K then 32K context); when the release's manifest names a base release with a trained
model (`stages.pretrain.init`), it continues from that model on the continued phase schedule.

- **local** profile: one subprocess in `.venv-gpu` on CPU, the tiny preset; it is the one rank itself
  (`stages.pretrain.local.launcher: inline`, config/local.yaml) or runs the DeepSpeed launcher over `local.processes`
  gloo ranks (`launcher: deepspeed`, the default).
- **k8s** profile: a headless Service and an Indexed Job of `stages.pretrain.k8s.nodes` pods x `gpus_per_node`
  GPUs (the platform configuration, read when the task runs) joined by a torchrun rendezvous at pod 0, in the
  `gpu` pool.

A retry resumes from the newest complete checkpoint of the interrupted attempt. Emits the `pretrain` Asset with the
release name and the model's location: the release's model (evaluation, RL, and the next scorer's base).
"""

from pathlib import Path

import pendulum
from airflow.sdk import dag
from assets import DATASET, MODEL
from distributed_launch import distributed_stage_tasks
from stage_launcher import publish, release_params, resolve_release


@dag(
    dag_id=Path(__file__).stem,
    schedule=[DATASET],
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=False,
    tags=["seedcoder", "pretrain", "gpu", "release"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    max_active_runs=1,
    params=release_params("from the triggering dataset event"),
    doc_md=__doc__,
)
def pretrain():
    release = resolve_release()
    first, last = distributed_stage_tasks("pretrain", module="training.pretrain", partition="release")
    release >> first
    last >> publish(MODEL, "pretrain", partition="release",
                    extra_metrics={"model": "export", "init": "init", "base_release": "base_release"})(release)


pretrain()
