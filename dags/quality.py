"""
### Score code quality and drop the worst files (Seed-Coder's LLM quality filter)

Scheduled on the `filters` Asset (the event's extra names the snapshot), or run by hand with the `snapshot` param.
Four stages, each re-runnable alone and reading only the previous stages' committed outputs:

1. `oracle_label` (GPU): a stratified sample by language, rated 0-10 by the oracle with the report's prompt
   (readability, modularity, clarity, reusability; zero-score policy). The local profile has no LLM and uses
   the rule-based teacher, whose labels are named `rules:...`, never LLM labels.
2. `train_scorer` (GPU): a Llama-structured model with a regression head, one epoch of MSE on labels / 10;
   held-out MAE (0-10 scale) in its stats; saved in Hugging Face format.
3. `score` (GPU): every file scored by vLLM's pooling runner (transformers on CPU), sharded and resumable.
4. `quality_filter`: drops the lowest-scored share (default 10%); threshold, dropped share and per-language
   score histograms in its stats and `score_histogram.json`.

Emits the `quality_filter` Asset, which schedules the dataset build.
"""

from pathlib import Path

import pendulum
from airflow.sdk import dag
from assets import CURATED, FILTERED
from stage_launcher import PodResources, publish, resolve_snapshot, snapshot_params, stage_task

ONE_GPU = PodResources(cpu="8", memory="64Gi", gpus=1)


@dag(
    dag_id=Path(__file__).stem,
    schedule=[FILTERED],
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=False,
    tags=["seedcoder", "quality", "gpu"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    params=snapshot_params("from the triggering filters event"),
    doc_md=__doc__,
)
def quality():
    snapshot = resolve_snapshot()
    # The oracle's API key from the deployment's Secret; the scorer's base checkpoint from the models volume.
    label = stage_task("oracle_label", module="training.quality.oracle_label", runtime="gpu", resources=ONE_GPU,
                       secrets=("oracle",))
    train = stage_task("train_scorer", module="training.quality.train_scorer", runtime="gpu", resources=ONE_GPU,
                       volumes=("models",))
    score = stage_task("score", module="training.quality.score", runtime="gpu", resources=ONE_GPU)
    # Threshold + split is pyarrow work: a CPU pod, no GPU.
    keep = stage_task("quality_filter", module="training.quality.quality_filter", runtime="python",
                      resources=PodResources(cpu="4", memory="32Gi"))
    snapshot >> label >> train >> score >> keep >> publish(CURATED, "quality_filter")(snapshot)


quality()
