"""
### Reinforcement learning: GRPO with DAPO's techniques on sandbox-verified code tasks

Scheduled on the `pretrain` Asset (its extra names the snapshot), or run by hand with the `snapshot` param and,
optionally, a `model` (a Hugging Face model directory or its lake URI) and a `tasks` set (`mbpp:train`,
`easy:200`, or a JSONL file of tasks with tests: see `training/rl/tasks.py`). Everything of the run is committed to
the snapshot `{snapshot}.rl`:

1. `rl_warmup`: the task set, and a short supervised warm-up on the reference solutions (references that fail
   their own tests in the sandbox are not taught), so the policy solves some tasks before GRPO;
2. per round k (`$SEEDCODER_RL_ROUNDS`, the report's progressive exploration: 16K tokens x 16 responses, then
   32K x 32): `rl_curriculum_k` estimates each task's pass rate with the current policy, drops those solved
   more than 87.5% of the time or never, and orders the rest by difficulty; `rl_round_k` runs the GRPO steps
   (vLLM rollouts with the policy's weights synced in every step, sandbox rewards, dynamic sampling, clip-higher,
   token-level loss, truncated responses masked), checkpointing so a retry resumes at its last step;
3. `evaluate`: the final policy's HumanEval / MBPP pass@k, FIM and held-out bits per byte (on the base
   snapshot's held-out files), beside it in the lake.

- **local** profile: each step is a `.venv-gpu` subprocess on CPU, judging in a local sandbox pool.
- **k8s** profile: the warm-up and the rounds are Indexed Jobs of `$SEEDCODER_RL_NODES` pods x
  `$SEEDCODER_RL_GPUS_PER_NODE` GPUs (torchrun), the curriculum and the evaluation one-GPU pods, all in the `gpu`
  pool; they judge through the sandbox service (the chart's `sandbox` Deployment, behind a deny-egress
  NetworkPolicy).

Emits the `rl` Asset with the final round's numbers.
"""

import os
from pathlib import Path

import pendulum
from airflow.sdk import Param, dag, task
from assets import MODEL, RL_POLICY
from distributed_launch import DistributedLaunch, distributed_stage_tasks
from stage_launcher import PodResources, publish, resolve_snapshot, snapshot_params, stage_task

ROUNDS = int(os.environ.get("SEEDCODER_RL_ROUNDS", "2"))
ONE_GPU = PodResources(cpu="8", memory="64Gi", gpus=1)
BASE = "{{ ti.xcom_pull(task_ids='base_snapshot') }}"


def launch(stage: str, *args: str) -> DistributedLaunch:
    """The k8s Indexed Job of a training step, shaped by the deployment's environment."""
    return DistributedLaunch(stage=stage, module="training.rl", stage_args=args,
                             nodes=int(os.environ.get("SEEDCODER_RL_NODES", "1")),
                             gpus_per_node=int(os.environ.get("SEEDCODER_RL_GPUS_PER_NODE", "8")))


@task(task_id="base_snapshot")
def base_snapshot(**context) -> str:
    """The snapshot whose model RL starts from (the param, else the triggering pretrain event)."""
    return resolve_snapshot.function(**context)


@task(task_id="snapshot")
def rl_snapshot(base: str) -> str:
    """The run's own partition: every RL stage and the final evaluation live in ``{base}.rl``."""
    from lake.stage import check_snapshot

    return check_snapshot(f"{base}.rl")


@dag(
    dag_id=Path(__file__).stem,
    schedule=[MODEL],
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=False,
    tags=["seedcoder", "rl", "gpu"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    max_active_runs=1,
    params={**snapshot_params("from the triggering pretrain event"),
            "model": Param("", type="string", description="A Hugging Face model directory or its lake URI to start "
                                                          "from instead of the snapshot's pretrain export."),
            "tasks": Param("", type="string", description="The task set instead of stages.rl.tasks: mbpp:<split>, "
                                                          "easy:<count>, or a JSONL file (path or lake URI).")},
    doc_md=__doc__,
)
def rl():
    base = base_snapshot()
    partition = rl_snapshot(base)
    warmup_args = ["warmup", "--set", f"stages.rl.model.snapshot={BASE}", "--model={{ params.model }}",
                   "--tasks={{ params.tasks }}"]
    first, last = distributed_stage_tasks("rl_warmup", module="training.rl", extra_args=warmup_args,
                                          launch=launch("rl_warmup", *warmup_args))
    partition >> first
    for k in range(1, ROUNDS + 1):
        curriculum = stage_task(f"rl_curriculum_{k}", module="training.rl", runtime="gpu", resources=ONE_GPU,
                                extra_args=["curriculum", "--round", str(k)])
        args = ["grpo", "--round", str(k)]
        round_first, round_last = distributed_stage_tasks(f"rl_round_{k}", module="training.rl", extra_args=args,
                                                          launch=launch(f"rl_round_{k}", *args))
        last >> curriculum >> round_first
        last = round_last
    judge = stage_task("evaluate", module="training.evaluate", runtime="gpu", resources=ONE_GPU,
                       extra_args=["--set", f"stages.evaluate.model_stage=rl_round_{ROUNDS}",
                                   "--set", f"stages.evaluate.bpb.snapshot={BASE}"])
    last >> judge >> publish(RL_POLICY, f"rl_round_{ROUNDS}")(partition)


rl()
