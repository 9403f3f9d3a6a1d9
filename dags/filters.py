"""
### Filter a deduplicated snapshot

Scheduled on the `dedup` Asset (the event's extra names the snapshot), or run by hand with the `snapshot` param.
Four independent, re-runnable Spark stages, each reading the previous one's committed files:

1. `syntax_filter`: tree-sitter parse; drops files whose unparseable share exceeds their language's threshold.
2. `rule_filter`: the minimal rules (encoded blobs, extreme lines, low alphanumeric share, generated, lock, minified).
3. `decontaminate`: drops files sharing a word 10-gram with HumanEval and the configured evaluation sets.
4. `pii_redact`: redacts emails, public IPs, keys, tokens and private keys (drops nothing).

Every excluded record goes to its stage's `quarantine` dataset with a reason; `_stats.json` counts the reasons.
Emits the `filters` Asset with the `pii_redact` output, which the quality DAG scores.
"""

from pathlib import Path

import pendulum
from airflow.sdk import dag
from assets import DEDUPED, FILTERED
from stage_launcher import PodResources, publish, resolve_snapshot, snapshot_params, stage_task

FILTER_STAGES = ("syntax_filter", "rule_filter", "decontaminate", "pii_redact")
# The evaluation sets (stages.decontaminate.eval_sets.files) come from the deployment's eval-sets volume.
EVAL_SET_VOLUMES = {"decontaminate": ("eval_sets",)}


@dag(
    dag_id=Path(__file__).stem,
    schedule=[DEDUPED],
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=False,
    tags=["seedcoder", "filters"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    params=snapshot_params("from the triggering dedup event"),
    doc_md=__doc__,
)
def filters():
    snapshot = resolve_snapshot()
    upstream = snapshot
    for stage in FILTER_STAGES:
        task = stage_task(stage, module=f"spark_jobs.filters.{stage}", resources=PodResources(cpu="4", memory="16Gi"),
                          volumes=EVAL_SET_VOLUMES.get(stage, ()))
        upstream >> task
        upstream = task
    upstream >> publish(FILTERED, FILTER_STAGES[-1])(snapshot)


filters()
