"""
### Crawl a snapshot into the lake

Reads the configured source (the local profile: a directory of repositories; the k8s profile: GitHub)
into `snapshot={id}/crawl/` of the lake, with every dropped file and its reason recorded.

* **Scheduled** monthly: the run for the month starting at the data interval's start crawls snapshot `YYYY-MM`.
  The timetable gives each run a month-long data interval and starts it after the month has ended (a snapshot is
  the state at the end of its month; a bare cron string would give a one-instant interval at the month's start
  and crawl a month that has not happened yet). `catchup` is on, so `airflow backfill create --dag-id crawl --from-date ... --to-date ...` makes one
  partition per month; re-running a month replaces exactly that partition.
* **Manual**: trigger with the `snapshot` param (e.g. `2026-10`).

Emits the `crawl` Asset with `{"snapshot": id}`, which schedules the dedup DAG.
"""

from pathlib import Path

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag
from assets import CRAWLED
from stage_launcher import publish, resolve_snapshot, snapshot_params, stage_task


@dag(
    dag_id=Path(__file__).stem,
    schedule=CronDataIntervalTimetable("@monthly", timezone="UTC"),
    start_date=pendulum.datetime(2026, 8, 1, tz="UTC"),
    catchup=True,
    max_active_runs=1,
    tags=["seedcoder", "crawl"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    params=snapshot_params("the data interval"),
    doc_md=__doc__,
)
def crawl():
    snapshot = resolve_snapshot()
    # The GitHub token reaches the Spark driver from the Secret the deployment names (secrets=).
    crawled = stage_task("crawl", module="spark_jobs.crawl", secrets=("github",))
    snapshot >> crawled >> publish(CRAWLED, "crawl")(snapshot)


crawl()
