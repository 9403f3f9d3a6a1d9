"""Fixed costs in a stage's stats: what the process paid before and inside its run, and its start-up."""

import time

from lake import timing
from lake.stage import Lake, StageRun


def test_a_run_commits_its_fixed_costs_and_the_next_counts_from_the_commit(tmp_path):
    lake = Lake.at(str(tmp_path))
    timing.take()  # costs earlier tests of this process paid (a shared Spark session) are not this run's
    timing.mark_start(time.time() - 2.0)  # as if the process had started two seconds ago
    with timing.fixed_cost("spark_session"):
        time.sleep(0.3)  # paid before the run opened (a session made first)
    with StageRun(lake, "s", "first") as run:
        timing.record("model_load", 0.25)
        time.sleep(0.1)
        run.stats.records_in = 1
    first = lake.stats("s", "first")
    costs = first["fixed_costs"]
    assert set(costs) == {"process_start", "spark_session", "model_load"}
    assert 0.3 <= costs["spark_session"] < 1.0 and costs["model_load"] == 0.25
    # start-up: the two seconds before the session, not the session again
    assert 1.9 <= costs["process_start"] < 2.5, costs
    assert first["wall_seconds"] >= 2.4 and first["wall_seconds"] >= first["seconds"]

    time.sleep(0.2)
    with StageRun(lake, "s", "second"):
        pass
    second = lake.stats("s", "second")["fixed_costs"]
    assert set(second) == {"process_start"} and 0.2 <= second["process_start"] < 1.0, second


def test_process_start_is_read_from_proc():
    started = timing.process_started_at()
    assert started is not None and started <= time.time()
