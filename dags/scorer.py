"""
### Train a new quality scorer version (labelling + scorer training, when a user asks for one)

Triggered by hand: a scorer is a versioned artifact (`models/scorer/{version}/`), not something retrained every
month. The monthly `quality` DAG scores with the pinned version (`stages.score.scorer_version`) and applies the
threshold the version fixed at training time, so scores and keep/drop decisions compare month to month.

1. `oracle_label` (GPU): a stratified sample of **snapshot**'s filtered files, rated 0-10 by the oracle with the
   report's prompt (local profile: the rule-based teacher, named `rules:...`, never LLM labels). **oracle**
   overrides the configured one; `release:<name>` has that release's model rate the data (served by vLLM).
   **labels_from** reuses an earlier version's labels instead (a new base on the same labels).
2. `train_scorer` (GPU): Llama-structured base + regression head, one epoch of MSE on labels / 10; held-out MAE;
   the threshold fixed on a calibration sample; `scorer.json` with the labels' provenance. **base_model**
   overrides the configured base; `release:<name>` starts from that release's pretrained model: the model
   curates its own data.

A published version is never trained again. Emits the `models/scorer` Asset with the version.
"""

from pathlib import Path

import pendulum
from airflow.sdk import Param, dag
from assets import SCORER
from stage_launcher import SNAPSHOT_PATTERN, PodResources, publish, resolve_scorer, stage_task

ONE_GPU = PodResources(cpu="8", memory="64Gi", gpus=1)


@dag(
    dag_id=Path(__file__).stem,
    schedule=None,
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=False,
    tags=["seedcoder", "quality", "gpu"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    params={
        "scorer": Param(type="string", pattern=SNAPSHOT_PATTERN, title="Scorer version",
                        description="The version to train (e.g. v2); an existing version is refused."),
        "snapshot": Param(None, type=["null", "string"], pattern=SNAPSHOT_PATTERN, title="Labelled snapshot",
                          description="The snapshot whose filtered files are sampled and rated."),
        "oracle": Param(None, type=["null", "string"], title="Oracle",
                        description="rules, vllm, openai or release:<name>; empty: stages.oracle_label.oracle."),
        "labels_from": Param(None, type=["null", "string"], pattern=SNAPSHOT_PATTERN, title="Reuse labels of",
                             description="An earlier scorer version whose labels are reused (no rating)."),
        "base_model": Param(None, type=["null", "string"], title="Base model",
                            description="A path or release:<name>; empty: stages.train_scorer.base_model."),
    },
    doc_md=__doc__,
)
def scorer():
    version = resolve_scorer()
    # The oracle's API key from the deployment's Secret; the scorer's base checkpoint from the models volume.
    label = stage_task("oracle_label", module="training.quality.oracle_label", runtime="gpu", resources=ONE_GPU,
                       partition="scorer", secrets=("oracle",),
                       extra_args=["--snapshot", "{{ params.snapshot or '' }}", "--oracle", "{{ params.oracle or '' }}",
                                   "--labels-from", "{{ params.labels_from or '' }}"])
    train = stage_task("train_scorer", module="training.quality.train_scorer", runtime="gpu", resources=ONE_GPU,
                       partition="scorer", volumes=("models",),
                       extra_args=["--base-model", "{{ params.base_model or '' }}"])
    version >> label >> train >> publish(SCORER, "train_scorer", partition="scorer",
                                         extra_metrics=("mae_heldout", "threshold", "base_model", "oracle"))(version)


scorer()
