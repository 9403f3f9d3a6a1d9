"""A sensor that holds an incremental stage until every earlier snapshot has gone through it (lake.ordering).

During a backfill several months are crawled close together, and each crawl event starts a dedup run; near dedup
of month N+1 must not run before month N's is committed, or the cross-month index would depend on timing. The
dedup DAG starts with this sensor: it waits (rescheduled, holding no worker slot) while an earlier crawled snapshot
lacks its committed ``stage``, logging which one, and fails after ``timeout`` naming it. The stage itself refuses
with the same message when run by hand out of order.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import PokeReturnValue, task


def wait_for_earlier_snapshots(stage: str, *, poke_interval_s: float = 60, timeout_s: float = 24 * 3600):
    """The sensor task (``wait_for_earlier_<stage>``) taking the run's snapshot ids (comma-separated).

    Only the first (earliest) id is checked: the stage processes a run's ids in order, so by the time it reaches
    a later one, the earlier ones of the same run are committed.
    """

    @task.sensor(task_id=f"wait_for_earlier_{stage}", poke_interval=poke_interval_s, timeout=timeout_s,
                 mode="reschedule", retries=0, execution_timeout=pendulum.duration(seconds=timeout_s + 600))
    def _wait(ids: str, **_context: Any) -> PokeReturnValue:
        from lake.config import load_config
        from lake.ordering import missing_earlier

        first = ids.split(",")[0]
        missing = missing_earlier(load_config().open_lake(), first, stage)
        if missing:
            print(f"{stage} of {first!r} waits for the committed {stage} of earlier snapshot(s) {missing}",
                  flush=True)
        return PokeReturnValue(is_done=not missing, xcom_value=ids)

    return _wait
