"""
### Cut a release: a named, immutable training corpus from many curated snapshots

Triggered by hand from the UI form (no schedule: a release is a decision, not a monthly event). A snapshot is the
unit of data work and holds only what was new that month; a release is the unit of model work:

* **name**: the release's name (refused if it exists: releases are immutable; a new name is cheap);
* **snapshots**: the snapshots to include, or **up_to**: every snapshot with a committed curation up to that id;
* **base_release**: the release this one continues (pretraining then starts from its model);
* **tokenizer**: `train` one on this release, or `pin` an earlier release's (`tokenizer_from`, default the base),
  so token ids stay the same and a model can continue training.

`cut_release` (Spark, stage `release`) takes the union of the snapshots' curated files, makes each repository whole again at its
newest version (incremental dedup had spread it over months), adds their commit samples (secrets/PII redacted,
decontaminated) and scores, and commits `release={name}/` with its `manifest.json`: each snapshot's committed
attempt and the scorer version that curated it, the tokenizer, the base release, the config and its hash.

Emits the `release` Asset with the release name, which schedules the dataset build (then pretraining).
"""

from pathlib import Path

import pendulum
from airflow.sdk import Param, dag
from assets import RELEASE
from stage_launcher import SNAPSHOT_PATTERN, PodResources, publish, resolve_release, stage_task

OPTIONAL_NAME = {"type": ["null", "string"], "pattern": SNAPSHOT_PATTERN}


@dag(
    dag_id=Path(__file__).stem,
    schedule=None,
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=False,
    tags=["seedcoder", "release"],
    default_args={"retries": 1, "retry_delay": pendulum.duration(minutes=2)},
    params={
        "release": Param(type="string", pattern=SNAPSHOT_PATTERN, title="Release name",
                         description="Name of the new release (e.g. 2026-q3); an existing name is refused."),
        "snapshots": Param([], type="array", items={"type": "string", "pattern": SNAPSHOT_PATTERN},
                           title="Snapshots", description="Snapshot ids to include (or leave empty and use up_to)."),
        "up_to": Param(None, **OPTIONAL_NAME, title="Up to snapshot",
                       description="Include every snapshot with a committed curation up to this id (inclusive)."),
        "base_release": Param(None, **OPTIONAL_NAME, title="Base release",
                              description="The release this one continues: pretraining starts from its model."),
        "tokenizer": Param("train", enum=["train", "pin"], title="Tokenizer",
                           description="train: a tokenizer for this release; pin: an earlier release's."),
        "tokenizer_from": Param(None, **OPTIONAL_NAME, title="Pin the tokenizer of",
                                description="With tokenizer=pin: the release whose tokenizer is pinned "
                                            "(default: the base release)."),
    },
    doc_md=__doc__,
)
def release():
    name = resolve_release()
    # The commit samples' decontamination reads the same evaluation sets as the filters (the eval-sets volume).
    cut = stage_task("release", module="spark_jobs.release", partition="release", task_id="cut_release",
                     resources=PodResources(cpu="4", memory="16Gi"), volumes=("eval_sets",),
                     extra_args=["--snapshots", "{{ params.snapshots | join(',') }}",
                                 "--up-to", "{{ params.up_to or '' }}",
                                 "--base", "{{ params.base_release or '' }}",
                                 "--tokenizer", "{{ params.tokenizer }}",
                                 "--tokenizer-from", "{{ params.tokenizer_from or '' }}"])
    name >> cut >> publish(RELEASE, "release", partition="release",
                           extra_metrics=("snapshots", "base_release", "tokenizer", "manifest"))(name)


release()
