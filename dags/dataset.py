"""
### Build the training dataset of a curated snapshot

Scheduled on the `quality_filter` Asset (the event's extra names the snapshot), or run by hand with the
`snapshot` param. Two stages, each re-runnable alone:

1. `tokenizer`: trains the byte-level BPE (digits split, Seed-Coder special tokens incl. the FIM markers)
   on the curated files and saves it in Hugging Face format.
2. `dataset_build` (Spark): file-level, repository-level (dependency order) and commit documents,
   decontaminated against the evaluation sets, SPM FIM, tokenized and packed into memory-mappable token
   shards per source, with `token_index.json` and tokens per source in `_stats.json`. A killed build
   re-run resumes from its finished groups.

Emits the `dataset` Asset, which schedules pretraining.
"""

from pathlib import Path

import pendulum
from airflow.sdk import dag
from assets import CURATED, DATASET
from stage_launcher import PodResources, publish, resolve_snapshot, snapshot_params, stage_task


@dag(
    dag_id=Path(__file__).stem,
    schedule=[CURATED],
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=False,
    tags=["seedcoder", "dataset"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    params=snapshot_params("from the triggering curation event"),
    doc_md=__doc__,
)
def dataset():
    snapshot = resolve_snapshot()
    # BPE training is one multi-threaded process: a big CPU pod, not a Spark job.
    tokenizer = stage_task("tokenizer", module="spark_jobs.dataset.tokenizer", runtime="python",
                           resources=PodResources(cpu="32", memory="128Gi"))
    # The final decontamination check reads the same evaluation sets as the filters (the eval-sets volume).
    build = stage_task("dataset_build", module="spark_jobs.dataset.build",
                       resources=PodResources(cpu="4", memory="16Gi"), volumes=("eval_sets",))
    snapshot >> tokenizer >> build >> publish(DATASET, "dataset_build")(snapshot)


dataset()
