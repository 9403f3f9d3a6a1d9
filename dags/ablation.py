"""
### Ablation: does curation make a better model?

The measurement the Seed-Coder report makes and no open pipeline automates. One run trains and evaluates one
**arm** with one **seed**; run every arm with several seeds (`python benchmarks/ablation.py` does, and writes the
table with the deltas and their spread).

An arm is a training corpus built from the base snapshot's curated data with a stage switched off, everything
else equal: the same preset and token budget (pretrain phases in steps), the same seed across arms, the base's
tokenizer, and the same held-out set (the base's `dataset_build/heldout`; every arm holds out the same
repositories, chosen by a hash of their names). Params:

- `snapshot`: the base snapshot (its quality and dataset DAGs done);
- `arm`: `curated` (the quality filter's output), `no_quality_filter` (its input, `pii_redact`),
  `no_filters` (near dedup's output: syntax, rule, decontamination, PII and quality filters all off),
  `no_near_dedup` (exact dedup's output: near dedup and everything after it off);
- `seed`: the seed of the arm's dataset build and pretraining.

The arm's stages (`dataset_build` -> `pretrain` -> `evaluate`) write into a snapshot of its own,
`{snapshot}.{arm}.s{seed}`, and read the base through config overrides (`--set`). Emits the `ablation` Asset.
"""

from pathlib import Path

import pendulum
from airflow.sdk import Param, dag, task
from assets import ABLATION
from distributed_launch import DistributedLaunch, distributed_stage_tasks
from stage_launcher import SNAPSHOT_PATTERN, PodResources, profile, publish, stage_task

# The stage whose committed files are each arm's corpus: switching a stage off = building from its input.
ARM_INPUTS = {"curated": "quality_filter", "no_quality_filter": "pii_redact", "no_filters": "near_dedup",
              "no_near_dedup": "exact_dedup"}
BASE = "{{ params.snapshot }}"
DATASET_ARGS = ["--set", "stages.dataset_build.input_snapshot=" + BASE,
                "--set", "stages.dataset_build.input={{ arm_inputs[params.arm] }}",
                "--set", "stages.dataset_build.tokenizer_snapshot=" + BASE,
                "--set", "stages.dataset_build.seed={{ params.seed }}"]
PRETRAIN_ARGS = ("--set", "stages.pretrain.seed={{ params.seed }}")
EVALUATE_ARGS = ["--set", "stages.evaluate.bpb.snapshot=" + BASE]


@task(task_id="snapshot")
def arm_snapshot(**context) -> str:
    """The arm's own snapshot id; the base must have the arm's corpus and a tokenizer and held-out set."""
    from lake.config import load_config
    from lake.stage import check_snapshot

    params = context["params"]
    base, arm, seed = params["snapshot"], params["arm"], int(params["seed"])
    if not base:
        raise ValueError("give the base snapshot (its quality and dataset DAGs done)")
    lake = load_config().open_lake()
    for stage in (ARM_INPUTS[arm], "tokenizer", "dataset_build"):
        lake.require(check_snapshot(base), stage)
    return check_snapshot(f"{base}.{arm}.s{seed}")


@dag(
    dag_id=Path(__file__).stem,
    schedule=None,
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=False,
    tags=["seedcoder", "ablation", "gpu"],
    default_args={"retries": 1, "retry_delay": pendulum.duration(minutes=2)},
    params={"snapshot": Param(None, type=["null", "string"], pattern=SNAPSHOT_PATTERN,
                              description="The base snapshot: its quality and dataset DAGs have run."),
            "arm": Param("curated", enum=sorted(ARM_INPUTS), description="Which corpus to train on."),
            "seed": Param(1, type="integer", minimum=0, description="Seed of the arm's build and pretraining.")},
    user_defined_macros={"arm_inputs": ARM_INPUTS},
    doc_md=__doc__,
)
def ablation():
    snapshot = arm_snapshot()
    build = stage_task("dataset_build", module="spark_jobs.dataset.build", runtime="spark",
                       resources=PodResources(cpu="4", memory="16Gi"), extra_args=DATASET_ARGS)
    # local: the overrides go on the subprocess' command line; k8s: into the Indexed Job's container command
    local_args = {"extra_args": list(PRETRAIN_ARGS)} if profile() == "local" else {}
    first, last = distributed_stage_tasks(
        "pretrain", module="training.pretrain", **local_args,
        launch=DistributedLaunch(stage="pretrain", module="training.pretrain", nodes=1, stage_args=PRETRAIN_ARGS))
    judge = stage_task("evaluate", module="training.evaluate", runtime="gpu",
                       resources=PodResources(cpu="8", memory="64Gi", gpus=1), extra_args=EVALUATE_ARGS)
    snapshot >> build >> first
    last >> judge >> publish(ABLATION, "evaluate")(snapshot)


ablation()
