"""
### Reinforcement learning: GRPO with DAPO's techniques on sandbox-verified code tasks

Scheduled on the `pretrain` Asset (its extra names the release), or run by hand with the `release` param and,
optionally, a `model` (a Hugging Face model directory or its lake URI) and a `tasks` set (`mbpp:train`,
`easy:200`, or a JSONL file of tasks with tests: see `training/rl/tasks.py`). Everything of the run is committed to
its own release partition `{release}.rl`, beside the release's model:

1. `rl_warmup`: the task set, and a short supervised warm-up on the reference solutions (references that fail
   their own tests in the sandbox are not taught), so the policy solves some tasks before GRPO;
2. per round k (`$SEEDCODER_RL_ROUNDS` rounds, default 2: the report's progressive exploration, 16K tokens x 16
   responses, then 32K x 32, as `stages.rl.rounds` configures them): `rl_curriculum_k` estimates each task's pass
   rate with the current policy, drops those solved more than 87.5% of the time or never, and orders the rest by
   difficulty; `rl_round_k` runs the GRPO steps (vLLM rollouts with the policy's weights synced in every step,
   sandbox rewards, dynamic sampling, clip-higher, token-level loss, truncated responses masked), checkpointing
   so a retry resumes at its last step;
3. `evaluate`: the final policy's HumanEval / MBPP pass@k, FIM and held-out bits per byte (on the base release's
   held-out files), beside it in the lake.

- **local** profile: each step is a `.venv-gpu` subprocess on CPU, judging in a local sandbox pool.
- **k8s** profile: the warm-up and the rounds are Indexed Jobs shaped by `stages.rl.k8s` (nodes x GPUs,
  torchrun), the curriculum and the evaluation one-GPU pods, all in the `gpu` pool; they judge through the
  sandbox service (the chart's `sandbox` Deployment, behind a deny-egress NetworkPolicy; `SEEDCODER_SANDBOX_URL`).

Emits the `rl` Asset with the final round's numbers and the policy's location.
"""

import os
from pathlib import Path

import pendulum
from airflow.sdk import Param, dag, task
from assets import MODEL, RL_POLICY
from distributed_launch import distributed_stage_tasks
from stage_launcher import PodResources, partition_ids, publish, release_params, stage_task

ROUNDS = int(os.environ.get("SEEDCODER_RL_ROUNDS", "2"))
ONE_GPU = PodResources(cpu="8", memory="64Gi", gpus=1)
BASE = "{{ ti.xcom_pull(task_ids='base_release') }}"


@task(task_id="base_release")
def base_release(**context) -> str:
    """The release whose model RL starts from: the param, else the triggering pretrain event (the last one)."""
    return partition_ids("release", context).split(",")[-1]


@task(task_id="release")
def rl_release(base: str) -> str:
    """The run's own partition: every RL stage and the final evaluation live in ``{base}.rl``."""
    from lake.stage import Partition

    return Partition.release(f"{base}.rl").name


@dag(
    dag_id=Path(__file__).stem,
    schedule=[MODEL],
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=False,
    tags=["seedcoder", "rl", "gpu", "release"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    max_active_runs=1,
    params={**release_params("from the triggering pretrain event"),
            "model": Param("", type="string", description="A Hugging Face model directory or its lake URI to start "
                                                          "from instead of the release's pretrain export."),
            "tasks": Param("", type="string", description="The task set instead of stages.rl.tasks: mbpp:<split>, "
                                                          "easy:<count>, or a JSONL file (path or lake URI).")},
    doc_md=__doc__,
)
def rl():
    base = base_release()
    partition = rl_release(base)
    # An empty --model= / --tasks= means "not given" (stages.rl.model's export, stages.rl.tasks).
    warmup_args = ("warmup", f"--set=stages.rl.model.release={BASE}", "--model={{ params.model }}",
                   "--tasks={{ params.tasks }}")
    first, last = distributed_stage_tasks("rl_warmup", module="training.rl", partition="release",
                                          stage_args=warmup_args, config_section="rl")
    partition >> first
    for k in range(1, ROUNDS + 1):
        curriculum = stage_task(f"rl_curriculum_{k}", module="training.rl", runtime="gpu", resources=ONE_GPU,
                                partition="release", extra_args=["curriculum", "--round", str(k)])
        round_first, round_last = distributed_stage_tasks(f"rl_round_{k}", module="training.rl", partition="release",
                                                          stage_args=("grpo", "--round", str(k)),
                                                          config_section="rl")
        last >> curriculum >> round_first
        last = round_last
    judge = stage_task("evaluate", module="training.evaluate", runtime="gpu", resources=ONE_GPU, partition="release",
                       extra_args=["--set", f"stages.evaluate.model_stage=rl_round_{ROUNDS}",
                                   "--set", f"stages.evaluate.bpb.release={BASE}"])
    last >> judge >> publish(RL_POLICY, f"rl_round_{ROUNDS}", partition="release",
                             extra_metrics={"model": "export", "reward_first": "reward_first",
                                            "reward_last": "reward_last"})(partition)


rl()
