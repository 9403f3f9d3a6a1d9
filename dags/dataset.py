"""
### Build the training dataset of a release

Scheduled on the `release` Asset (the event's extra names the release), or run by hand with the `release` param.
Never runs on a monthly snapshot: a release is the union of many curated snapshots (see the `release` DAG).
Two stages, each re-runnable alone:

1. `tokenizer`: the release's tokenizer, as its manifest says: trained on the release's files (byte-level BPE,
   digits split, Seed-Coder special tokens incl. the FIM markers, Hugging Face format), or the pinned earlier
   release's, copied byte for byte so token ids stay comparable. Once committed it never changes.
2. `dataset_build` (Spark): file-level documents, repository-level documents (each repository at its newest
   version across the release's snapshots, in dependency order) and commit documents, decontaminated against
   the evaluation sets, SPM FIM, tokenized and packed into memory-mappable token shards per source, with
   `token_index.json` and tokens per source in `_stats.json`. A killed build re-run resumes from its finished groups.

Emits the `dataset` Asset with the release name, which schedules pretraining.
"""

from pathlib import Path

import pendulum
from airflow.sdk import dag
from assets import DATASET, RELEASE
from stage_launcher import PodResources, publish, release_params, resolve_release, stage_task


@dag(
    dag_id=Path(__file__).stem,
    schedule=[RELEASE],
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=False,
    tags=["seedcoder", "dataset", "release"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    params=release_params("from the triggering release event"),
    doc_md=__doc__,
)
def dataset():
    release = resolve_release()
    # BPE training is one multi-threaded process: a big CPU pod, not a Spark job.
    tokenizer = stage_task("tokenizer", module="spark_jobs.dataset.tokenizer", runtime="python", partition="release",
                           resources=PodResources(cpu="32", memory="128Gi"))
    # The final decontamination check reads the same evaluation sets as the filters (the eval-sets volume).
    build = stage_task("dataset_build", module="spark_jobs.dataset.build", partition="release",
                       resources=PodResources(cpu="4", memory="16Gi"), volumes=("eval_sets",))
    release >> tokenizer >> build >> publish(DATASET, "dataset_build", partition="release")(release)


dataset()
