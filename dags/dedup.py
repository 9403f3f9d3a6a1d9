"""
### Deduplicate a crawled snapshot

Scheduled on the `crawl` Asset (the event's extra names the snapshot), or run by hand with the `snapshot` param.
`exact_dedup` drops repeated content (SHA256) at repository and file level, keeping the copy from the repository
with the most stars, then forks, then a permissive licence, then the earliest.
`near_dedup` then removes near-duplicates with MinHash LSH (5-gram code shingles, 25 bands x 10 rows, Jaccard 0.8,
verified): first forks and copies of whole repositories, then files, with the same keep rule, and against the
signature index of earlier snapshots.

Order: near dedup is incremental, so a snapshot is deduplicated only after every earlier crawled snapshot's near
dedup committed. During a backfill the crawls of several months finish close together; the first task waits
(rescheduled, no worker slot held) until the earlier months are through, naming the one it waits for, so a backfill
commits exactly what sequential runs would. A run triggered by several crawl events processes all of them, in order.
Emits the `dedup` Asset.
"""

from pathlib import Path

import pendulum
from airflow.sdk import dag
from assets import CRAWLED, DEDUPED
from snapshot_order import wait_for_earlier_snapshots
from stage_launcher import publish, resolve_snapshot, snapshot_params, stage_task


@dag(
    dag_id=Path(__file__).stem,
    schedule=[CRAWLED],
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=False,
    tags=["seedcoder", "dedup"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    params=snapshot_params("from the triggering crawl event"),
    doc_md=__doc__,
)
def dedup():
    snapshot = resolve_snapshot()
    ordered = wait_for_earlier_snapshots("near_dedup")(snapshot)
    exact = stage_task("exact_dedup", module="spark_jobs.exact_dedup")
    near = stage_task("near_dedup", module="spark_jobs.near_dedup")
    ordered >> exact >> near >> publish(DEDUPED, "near_dedup")(snapshot)


dedup()
