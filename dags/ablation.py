"""
### Ablation: does curation make a better model?

The measurement the Seed-Coder report makes and no open pipeline automates. One run trains and evaluates one
**arm** with one **seed**; run every arm with several seeds (`python benchmarks/ablation.py` does, and writes the
table with the deltas and their spread).

An arm is a release cut again from the base release's snapshots with a stage switched off (the cut reads each
snapshot's output of another stage: `stages.release.input_stage`), everything else equal: the base release's
tokenizer (pinned), the same preset and token budget (pretrain phases in steps), the same seed across arms, and the
same held-out set (the base's `dataset_build/heldout`; every arm's build holds out the same repositories, chosen
by a hash of their names). Params:

- `release`: the base release (its dataset DAG done: tokenizer and the held-out set);
- `arm`: `curated` (the quality filter's output), `no_quality_filter` (its input, `pii_redact`),
  `no_filters` (near dedup's output: syntax, rule, decontamination, PII and quality filters all off),
  `no_near_dedup` (exact dedup's output: near dedup and everything after it off);
- `seed`: the seed of the arm's dataset build and pretraining.

The arm's release is `{release}.{arm}.s{seed}`: cut (or reused when a run already cut it: releases are immutable)
-> tokenizer (pinned) -> `dataset_build` -> `pretrain` (from scratch) -> `evaluate` (bits per byte on the base's
held-out set, through `--set`). Emits the `ablation` Asset.
"""

from pathlib import Path

import pendulum
from airflow.sdk import Param, dag, task
from assets import ABLATION
from distributed_launch import distributed_stage_tasks
from stage_launcher import SNAPSHOT_PATTERN, PodResources, publish, stage_task

# The stage whose committed files are each snapshot's corpus in the arm: switching a stage off = cutting from its input.
ARM_INPUTS = {"curated": "quality_filter", "no_quality_filter": "pii_redact", "no_filters": "near_dedup",
              "no_near_dedup": "exact_dedup"}
BASE = "{{ params.release }}"
CUT_ARGS = ["--snapshots", "{{ ti.xcom_pull(task_ids='base_snapshots') }}", "--tokenizer", "pin",
            "--tokenizer-from", BASE, "--set", "stages.release.input_stage={{ arm_inputs[params.arm] }}"]
DATASET_ARGS = ["--set", "stages.dataset_build.seed={{ params.seed }}"]
PRETRAIN_ARGS = ("--set", "stages.pretrain.seed={{ params.seed }}", "--init", "scratch")
EVALUATE_ARGS = ["--set", "stages.evaluate.bpb.release=" + BASE]


def _base(params) -> str:
    from lake.stage import Partition

    if not params.get("release"):
        raise ValueError("give the base release (its dataset DAG done)")
    return Partition.release(params["release"]).name


@task(task_id="release")
def arm_release(**context) -> str:
    """The arm's own release name; the base must have its tokenizer and held-out set committed."""
    from lake.config import load_config
    from lake.release import arm_release as release_name
    from lake.stage import Partition

    params = context["params"]
    base, arm, seed = _base(params), params["arm"], int(params["seed"])
    lake = load_config().open_lake()
    for stage in ("release", "tokenizer", "dataset_build"):
        lake.require(Partition.release(base), stage)
    return release_name(base, arm, seed)


@task(task_id="base_snapshots")
def base_snapshots(**context) -> str:
    """The base release's snapshots (from its manifest): the arm cuts the same ones."""
    from lake.config import load_config
    from lake.release import read_manifest

    manifest = read_manifest(load_config().open_lake(), _base(context["params"]))
    return ",".join(entry.snapshot for entry in manifest.snapshots)


@task.branch(task_id="cut_or_reuse")
def cut_or_reuse(name: str) -> str:
    """Cut the arm's release, or go on with it when an earlier run cut it (a release is never cut twice)."""
    from lake.config import load_config
    from lake.release import committed

    return "tokenizer" if name in committed(load_config().open_lake()) else "cut_release"


@dag(
    dag_id=Path(__file__).stem,
    schedule=None,
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=False,
    tags=["seedcoder", "ablation", "gpu", "release"],
    default_args={"retries": 1, "retry_delay": pendulum.duration(minutes=2)},
    params={"release": Param(None, type=["null", "string"], pattern=SNAPSHOT_PATTERN,
                             description="The base release: its dataset DAG has run."),
            "arm": Param("curated", enum=sorted(ARM_INPUTS), description="Which corpus to train on."),
            "seed": Param(1, type="integer", minimum=0, description="Seed of the arm's build and pretraining.")},
    user_defined_macros={"arm_inputs": ARM_INPUTS},
    doc_md=__doc__,
)
def ablation():
    name = arm_release()
    snapshots = base_snapshots()
    branch = cut_or_reuse(name)
    cut = stage_task("release", module="spark_jobs.release", partition="release", task_id="cut_release",
                     resources=PodResources(cpu="4", memory="16Gi"), volumes=("eval_sets",), extra_args=CUT_ARGS)
    tokenizer = stage_task("tokenizer", module="spark_jobs.dataset.tokenizer", runtime="python", partition="release",
                           resources=PodResources(cpu="4", memory="16Gi"), trigger_rule="none_failed_min_one_success")
    build = stage_task("dataset_build", module="spark_jobs.dataset.build", partition="release",
                       resources=PodResources(cpu="4", memory="16Gi"), volumes=("eval_sets",), extra_args=DATASET_ARGS)
    # local: the overrides go on the subprocess' command line; k8s: into the Indexed Job's worker command (the
    # Job's shape is stages.pretrain.k8s, as for any pretraining run)
    first, last = distributed_stage_tasks("pretrain", module="training.pretrain", partition="release",
                                          stage_args=PRETRAIN_ARGS)
    judge = stage_task("evaluate", module="training.evaluate", runtime="gpu", partition="release",
                       resources=PodResources(cpu="8", memory="64Gi", gpus=1), extra_args=EVALUATE_ARGS)
    [name, snapshots] >> branch >> [cut, tokenizer]
    cut >> tokenizer >> build >> first
    last >> judge >> publish(ABLATION, "evaluate", partition="release")(name)


ablation()
