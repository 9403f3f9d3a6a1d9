"""scripts/pipeline.py's time table: every committed stage run is counted once, under the DAG run it began in.

The main command's DAGs follow each other within milliseconds, and a stage's ``started_at`` has whole seconds:
the table once listed a DAG's first stage under the previous DAG too (the crawl DAG showed exact_dedup, with a
negative "outside stages"). The DAG test (tests/dags/test_dag_runs.py) checks the same on a real run.
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

from lake.stage import ATTEMPT_TIME_FORMAT, Commit, Partition

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("pipeline_script", REPO / "scripts" / "pipeline.py")
pipeline = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pipeline)

T0 = datetime(2026, 12, 7, 6, 19, 0, tzinfo=UTC).timestamp()


def commit(stage: str, begun: float, wall: float, attempt_time: float | None = None) -> Commit:
    """A committed stage run that began at ``begun``; its attempt id carries ``attempt_time`` (default: begun)."""
    at = datetime.fromtimestamp(begun if attempt_time is None else attempt_time, UTC)
    stats = {"started_at": datetime.fromtimestamp(begun, UTC).isoformat(timespec="seconds"), "seconds": wall,
             "wall_seconds": wall, "fixed_costs": {"process_start": 0.5}}
    return Commit(partition=Partition.snapshot("demo"), stage=stage, attempt=at.strftime(ATTEMPT_TIME_FORMAT) + "-abc123",
                  datasets={}, stats=stats, committed_at="")


def test_a_stage_beginning_in_the_second_its_predecessor_dag_ended_is_counted_once():
    runs = [{"dag": "crawl", "seconds": 9.4, "started": T0 + 0.1, "ended": T0 + 9.5},
            {"dag": "dedup", "seconds": 20.2, "started": T0 + 9.6, "ended": T0 + 29.8}]
    commits = [commit("crawl", T0 + 0.3, 9.0), commit("exact_dedup", T0 + 9.7, 8.0),
               commit("near_dedup", T0 + 17.9, 11.5)]
    rows = pipeline.assign_stages(runs, commits)
    assert [[s["stage"] for s in r["stages"]] for r in rows] == [["crawl"], ["exact_dedup", "near_dedup"]]
    assert [r["outside_stages"] for r in rows] == [0.4, 0.7]
    assert rows[1]["stages"][0]["work"] == 7.5 and rows[1]["stages"][0]["fixed"] == {"process_start": 0.5}


def test_a_resumed_attempt_is_placed_by_its_started_at():
    # A killed run's attempt, adopted now: its id is an hour old, started_at is this run's (whole seconds, so up to
    # a second before the DAG run's own clock).
    runs = [{"dag": "crawl", "seconds": 5.0, "started": T0 + 0.6, "ended": T0 + 5.6}]
    resumed = commit("crawl", T0 + 0.9, 4.0, attempt_time=T0 - 3600)
    assert pipeline.stage_start(resumed.stats["started_at"], resumed.attempt) == (T0, 1.0)
    rows = pipeline.assign_stages(runs, [resumed])
    assert [s["stage"] for s in rows[0]["stages"]] == ["crawl"]


def test_stages_of_other_runs_are_left_out():
    runs = [{"dag": "crawl", "seconds": 5.0, "started": T0 + 100, "ended": T0 + 105}]
    rows = pipeline.assign_stages(runs, [commit("crawl", T0 + 10, 4.0)])
    assert rows[0]["stages"] == [] and rows[0]["outside_stages"] == 5.0
