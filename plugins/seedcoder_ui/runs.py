"""The DAG-run side of the lake's partitions, read from Airflow's metadata database (the API server's own session).

Every pipeline DAG starts with a resolver task named after the kind of partition its stages process (``snapshot``,
``release`` or ``scorer``) whose return value (XCom) is the run's id(s), comma-separated when one run processes
several; runs are matched to partitions through that XCom, and a run whose resolver has not run yet through its
conf (the manual-run form's field of the same name). Task instances are reported by the stage they run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from seedcoder_ui.pipeline import KINDS, stages_of


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def partition_ids(value: Any) -> list[str]:
    """The partition id(s) an XCom or conf value names (a string, comma-separated, a JSON string, or a list).

    >>> partition_ids("2026-10"), partition_ids('"2026-09,2026-10"'), partition_ids(["2026-09", "2026-10"])
    (['2026-10'], ['2026-09', '2026-10'], ['2026-09', '2026-10'])
    >>> partition_ids(None), partition_ids("")
    ([], [])
    """
    if isinstance(value, str) and value.startswith(("\"", "[")):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return [i for v in value if isinstance(v, str) for i in partition_ids(v)]
    return []


def _dag_ids(kind: str) -> list[str]:
    return sorted({s.dag_id for s in stages_of(kind)})


def run_partitions(session: Session, kind: str = "snapshot",
                   dag_ids: Iterable[str] | None = None) -> dict[tuple[str, str], list[str]]:
    """``{(dag_id, run_id): [id, ...]}`` for every run of the DAGs of ``kind`` that names partitions of it."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel

    dag_ids = list(dag_ids) if dag_ids is not None else _dag_ids(kind)
    out: dict[tuple[str, str], list[str]] = {}
    rows = session.execute(select(XComModel.dag_id, XComModel.run_id, XComModel.value)
                           .where(XComModel.task_id == kind, XComModel.key == "return_value",
                                  XComModel.dag_id.in_(dag_ids)))
    for dag_id, run_id, value in rows:
        if ids := partition_ids(value):
            out[(dag_id, run_id)] = ids
    for dag_id, run_id, conf in session.execute(select(DagRun.dag_id, DagRun.run_id, DagRun.conf)
                                                .where(DagRun.dag_id.in_(dag_ids))):
        if (dag_id, run_id) not in out and isinstance(conf, dict) and (ids := partition_ids(conf.get(kind))):
            out[(dag_id, run_id)] = ids
    return out


def latest_task_instances(session: Session, names: Iterable[str] | None = None,
                          kind: str = "snapshot") -> dict[str, dict[str, dict]]:
    """``{partition id: {stage: task instance}}``: each stage's most recent try in the runs of that partition.

    A task instance is ``{"dag_id", "run_id", "task_id", "state", "try_number", "start_date", "end_date",
    "run_state"}``; "most recent" is the task of the newest run (``run_after``), so a re-run that is queued shows
    as running before its task starts.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance as TI

    wanted = set(names) if names is not None else None
    runs = {k: [s for s in v if wanted is None or s in wanted] for k, v in run_partitions(session, kind).items()}
    runs = {k: v for k, v in runs.items() if v}
    if not runs:
        return {}
    stage_of = {(s.dag_id, s.task_id): s.stage for s in stages_of(kind)}
    query = (select(TI.dag_id, TI.run_id, TI.task_id, TI.state, TI.try_number, TI.start_date, TI.end_date,
                    DagRun.state, DagRun.run_after)
             .join(DagRun, (DagRun.dag_id == TI.dag_id) & (DagRun.run_id == TI.run_id))
             .where(TI.dag_id.in_(sorted({d for d, _ in runs})), TI.task_id.in_(sorted({t for _, t in stage_of})),
                    TI.map_index == -1))
    out: dict[str, dict[str, dict]] = {}
    for dag_id, run_id, task_id, state, try_number, start, end, run_state, run_after in session.execute(query):
        stage = stage_of.get((dag_id, task_id))
        if stage is None:
            continue
        for name in runs.get((dag_id, run_id), ()):
            ti = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id,
                  "state": str(state.value if hasattr(state, "value") else state) if state else None,
                  "try_number": try_number, "start_date": _iso(start), "end_date": _iso(end),
                  "run_state": str(run_state.value if hasattr(run_state, "value") else run_state),
                  "_order": (_iso(run_after) or "", _iso(start) or "")}
            current = out.setdefault(name, {}).get(stage)
            if current is None or ti["_order"] > current["_order"]:
                out[name][stage] = ti
    for stages in out.values():
        for ti in stages.values():
            ti.pop("_order")
    return out


def partitions_of_run(session: Session, dag_id: str, run_id: str) -> tuple[str | None, list[str]]:
    """What a DAG run works on: ``(kind, ids)`` from its resolver task's XCom (else its conf); ``(None, [])``."""
    for kind in KINDS:
        if dag_id in _dag_ids(kind) and (ids := run_partitions(session, kind, [dag_id]).get((dag_id, run_id))):
            return kind, ids
    return None, []
