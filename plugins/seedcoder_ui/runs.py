"""The DAG-run side of a snapshot, read from Airflow's metadata database (the API server's own session).

Every pipeline DAG starts with a ``snapshot`` task whose return value (XCom) is the run's snapshot id, so runs are
matched to snapshots through that XCom; a run whose ``snapshot`` task has not run yet is matched through its
``snapshot`` conf. Task instances are reported by the stage (task id) they run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from seedcoder_ui.pipeline import DAG_IDS, STAGES

SNAPSHOT_TASK = "snapshot"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def snapshot_ids(value: Any) -> list[str]:
    """The snapshot id(s) an XCom or conf value names (a string, a JSON string, or a list of them).

    >>> snapshot_ids("2026-10"), snapshot_ids('"2026-10"'), snapshot_ids(["2026-09", "2026-10"]), snapshot_ids(None)
    (['2026-10'], ['2026-10'], ['2026-09', '2026-10'], [])
    """
    if isinstance(value, str) and value.startswith(("\"", "[")):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []


def run_snapshots(session: Session, dag_ids: Iterable[str] = DAG_IDS) -> dict[tuple[str, str], list[str]]:
    """``{(dag_id, run_id): [snapshot, ...]}`` for every run of the pipeline DAGs that names a snapshot."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel

    dag_ids = list(dag_ids)
    out: dict[tuple[str, str], list[str]] = {}
    rows = session.execute(select(XComModel.dag_id, XComModel.run_id, XComModel.value)
                           .where(XComModel.task_id == SNAPSHOT_TASK, XComModel.key == "return_value",
                                  XComModel.dag_id.in_(dag_ids)))
    for dag_id, run_id, value in rows:
        if ids := snapshot_ids(value):
            out[(dag_id, run_id)] = ids
    for dag_id, run_id, conf in session.execute(select(DagRun.dag_id, DagRun.run_id, DagRun.conf)
                                                .where(DagRun.dag_id.in_(dag_ids))):
        if (dag_id, run_id) not in out and isinstance(conf, dict) and (ids := snapshot_ids(conf.get("snapshot"))):
            out[(dag_id, run_id)] = ids
    return out


def latest_task_instances(session: Session, snapshots: Iterable[str] | None = None) -> dict[str, dict[str, dict]]:
    """``{snapshot: {stage: task instance}}``: each stage's most recent try in the runs of that snapshot.

    A task instance is ``{"dag_id", "run_id", "task_id", "state", "try_number", "start_date", "end_date",
    "run_state"}``; "most recent" is the task of the newest run (``run_after``), so a re-run that is queued shows
    as running before its task starts.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance as TI

    wanted = set(snapshots) if snapshots is not None else None
    runs = {k: [s for s in v if wanted is None or s in wanted] for k, v in run_snapshots(session).items()}
    runs = {k: v for k, v in runs.items() if v}
    if not runs:
        return {}
    query = (select(TI.dag_id, TI.run_id, TI.task_id, TI.state, TI.try_number, TI.start_date, TI.end_date,
                    DagRun.state, DagRun.run_after)
             .join(DagRun, (DagRun.dag_id == TI.dag_id) & (DagRun.run_id == TI.run_id))
             .where(TI.dag_id.in_(sorted({d for d, _ in runs})), TI.task_id.in_(sorted(STAGES)),
                    TI.map_index == -1))
    out: dict[str, dict[str, dict]] = {}
    for dag_id, run_id, task_id, state, try_number, start, end, run_state, run_after in session.execute(query):
        for snapshot in runs.get((dag_id, run_id), ()):
            ti = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id,
                  "state": str(state.value if hasattr(state, "value") else state) if state else None,
                  "try_number": try_number, "start_date": _iso(start), "end_date": _iso(end),
                  "run_state": str(run_state.value if hasattr(run_state, "value") else run_state),
                  "_order": (_iso(run_after) or "", _iso(start) or "")}
            current = out.setdefault(snapshot, {}).get(task_id)
            if current is None or ti["_order"] > current["_order"]:
                out[snapshot][task_id] = ti
    for stages in out.values():
        for ti in stages.values():
            ti.pop("_order")
    return out


def snapshot_of_run(session: Session, dag_id: str, run_id: str) -> list[str]:
    """The snapshot(s) a DAG run works on (its ``snapshot`` XCom, else its conf)."""
    return run_snapshots(session, [dag_id]).get((dag_id, run_id), [])
