"""
### Score a snapshot's files with the pinned scorer version and drop the worst (Seed-Coder's LLM quality filter)

Scheduled on the `filters` Asset (the event's extra names the snapshot), or run by hand with the `snapshot` param.
The scorer is a versioned artifact made by the `scorer` DAG when a user asks for one; every monthly run scores
with the pinned version (`stages.score.scorer_version`, or the `scorer` param of a manual run), so scores are
comparable from month to month:

1. `score` (GPU): every file scored by vLLM's pooling runner (transformers on CPU), sharded and resumable.
2. `quality_filter`: drops the files below the threshold the scorer version fixed at training time on its
   calibration sample (a per-snapshot bottom-share quantile stays available: `stages.quality_filter.mode`);
   threshold, dropped share, the share of decisions that changed against the snapshot's previous curation, and
   per-language score histograms in its stats and `score_histogram.json`.

Emits the `quality_filter` Asset: the snapshot is curated and can go into a release (the `release` DAG).
"""

from pathlib import Path

import pendulum
from airflow.sdk import Param, dag
from assets import CURATED, FILTERED
from stage_launcher import SNAPSHOT_PATTERN, PodResources, publish, resolve_snapshot, snapshot_params, stage_task

ONE_GPU = PodResources(cpu="8", memory="64Gi", gpus=1)


@dag(
    dag_id=Path(__file__).stem,
    schedule=[FILTERED],
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=False,
    tags=["seedcoder", "quality", "gpu"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    params={**snapshot_params("from the triggering filters event"),
            "scorer": Param(None, type=["null", "string"], pattern=SNAPSHOT_PATTERN, title="Scorer version",
                            description="Score with this version; empty: the pinned stages.score.scorer_version.")},
    doc_md=__doc__,
)
def quality():
    snapshot = resolve_snapshot()
    score = stage_task("score", module="training.quality.score", runtime="gpu", resources=ONE_GPU,
                       extra_args=["--scorer-version", "{{ params.scorer or '' }}"])
    # Threshold + split is pyarrow work: a CPU pod, no GPU.
    keep = stage_task("quality_filter", module="training.quality.quality_filter", runtime="python",
                      resources=PodResources(cpu="4", memory="32Gi"))
    snapshot >> score >> keep >> publish(CURATED, "quality_filter")(snapshot)


quality()
