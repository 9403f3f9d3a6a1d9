"""
### Pretrain a code model on a snapshot's packed token shards

Scheduled on the `dataset` Asset (its extra names the snapshot), or run by hand with the `snapshot` param.
`pretrain` trains the Llama-structured model of `stages.pretrain.preset` with DeepSpeed on the committed shards of
`dataset_build`, following the Seed-Coder phase schedule (warmup, 3e-4, 3e-4/sqrt(10), 3e-5; 8K then 32K context),
checkpoints to the lake, and exports a Hugging Face model (transformers and vLLM load it; FIM prompts in SPM form).

- **local** profile: one subprocess in `.venv-gpu` that runs the DeepSpeed launcher on CPU (gloo), the tiny preset.
- **k8s** profile: a headless Service and an Indexed Job of `stages.pretrain.k8s.nodes` pods x `gpus_per_node`
  GPUs (the platform configuration, read when the task runs) joined by a torchrun rendezvous at pod 0, in the
  `gpu` pool.

A retry resumes from the newest complete checkpoint of the interrupted attempt. Emits the `pretrain` Asset.
"""

from pathlib import Path

import pendulum
from airflow.sdk import dag
from assets import DATASET, MODEL
from distributed_launch import distributed_stage_tasks
from stage_launcher import publish, resolve_snapshot, snapshot_params


@dag(
    dag_id=Path(__file__).stem,
    schedule=[DATASET],
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=False,
    tags=["seedcoder", "pretrain", "gpu"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    max_active_runs=1,
    params=snapshot_params("from the triggering dataset event"),
    doc_md=__doc__,
)
def pretrain():
    snapshot = resolve_snapshot()
    first, last = distributed_stage_tasks("pretrain", module="training.pretrain")
    snapshot >> first
    last >> publish(MODEL, "pretrain")(snapshot)


pretrain()
