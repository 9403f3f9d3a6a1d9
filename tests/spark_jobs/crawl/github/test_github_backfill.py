"""`airflow backfill create` over three months of the crawl DAG, run by a real scheduler, against the fake GitHub.

Airflow 3 runs backfills in the scheduler, and its LocalExecutor workers talk to the execution API, so the test
starts both (`airflow scheduler`, `airflow api-server --apps execution`) on a throw-away AIRFLOW_HOME with SQLite,
serializes the DAGs with `airflow dags reserialize`, and stops every process it started at the end.
The DAG is unpaused after the backfill is created (the scheduler starts runs of unpaused DAGs only).
Each run's `snapshot` task resolves the month from the data interval; its `crawl` task runs
`python -m spark_jobs.crawl` with the profile from $SEEDCODER_CONFIG (the GitHub source, pointed at the fake).

Nothing here depends on the day the test runs: the fake world is laid on the three months that ended before the
current month, and a cluster policy of this Airflow home (`airflow_local_settings.py`, Airflow's own hook for
altering DAGs at load) bounds the production crawl DAG's run window to exactly those months, so the scheduler's
catchup can only add runs for months the backfill already covered, on any date.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy
from fake_github import FakeGitHub
from scenario import REPO, TOKEN, build, months_before, write_config

from lake.stage import Lake

pytestmark = [pytest.mark.spark, pytest.mark.slow]
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bound_run_window(home: Path, dag_id: str, first: str, last: str) -> None:
    """A cluster policy (``$AIRFLOW_HOME/config/airflow_local_settings.py``) that bounds ``dag_id``'s schedule to
    the months ``first``..``last``: its start and end date, and every task's, at DAG load."""
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "airflow_local_settings.py").write_text(textwrap.dedent(f"""\
        import pendulum


        def dag_policy(dag):
            if dag.dag_id != {dag_id!r}:
                return
            start = pendulum.datetime({int(first[:4])}, {int(first[5:])}, 1, tz="UTC")
            end = pendulum.datetime({int(last[:4])}, {int(last[5:])}, 1, tz="UTC")
            dag.start_date, dag.end_date = start, end
            for task in dag.tasks:
                task.start_date, task.end_date = start, end
        """))


class AirflowHome:
    """A throw-away Airflow: this repository's dags/ and plugins/, processes it started, and its metadata in a fresh
    SQLite file, or in the empty database that $SEEDCODER_BACKFILL_TEST_DB names (a SQLAlchemy URL: a PostgreSQL
    server whose clock is shifted like the test's, by scripts/check_dates.sh)."""

    def __init__(self, home: Path, extra_env: dict[str, str]):
        self.home = home
        # SQLite's lock wait (5 s by default) is short for three writers on a loaded 2-core machine.
        self.db_url = os.environ.get("SEEDCODER_BACKFILL_TEST_DB") or f"sqlite:///{home / 'airflow.db'}?timeout=60"
        port = free_port()
        self.env = {**os.environ, **extra_env,
                    "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
                    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "2",
                    "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}", "AIRFLOW__API__PORT": str(port),
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
                    "AIRFLOW__API_AUTH__JWT_SECRET": "backfill-test-secret-0123456789abcdef",
                    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.port = port
        self.procs: list[subprocess.Popen] = []

    def cli(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def start(self, *args: str) -> None:
        log = open(self.home / f"{args[0]}.log", "ab")
        self.procs.append(subprocess.Popen([AIRFLOW, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True))

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def query(self, sql: str) -> list[tuple]:
        engine = sqlalchemy.create_engine(self.db_url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.exec_driver_sql(sql)]
        finally:
            engine.dispose()

    def wait_backfills_done(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.query("SELECT count(*) FROM backfill WHERE completed_at IS NOT NULL")[0][0]
            if done >= count:
                return
            for proc in self.procs:
                assert proc.poll() is None, f"{proc.args[1]} exited:\n" + self.log_tail(proc.args[1])
            time.sleep(3)
        raise AssertionError(f"backfill not done in {timeout:.0f}s; runs: {self.runs()}\n" + self.task_logs())

    def runs(self) -> list[tuple]:
        return self.query("SELECT logical_date, state, run_type FROM dag_run WHERE dag_id='crawl' "
                          "ORDER BY logical_date")

    def log_tail(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def task_logs(self) -> str:
        logs = sorted((self.home / "logs").rglob("*.log")) if (self.home / "logs").exists() else []
        return "\n".join(f"== {p}\n{p.read_text(errors='replace')[-1500:]}" for p in logs[-4:])


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    root = tmp_path_factory.mktemp("backfill")
    months = months_before(datetime.now(UTC))
    with FakeGitHub(token=TOKEN) as fake:
        build(fake, root / "repos", months)
        config = write_config(root / "config.yaml", fake, root / "lake")
        (root / "airflow").mkdir()
        bound_run_window(root / "airflow", "crawl", months[0], months[-1])
        airflow = AirflowHome(root / "airflow", {"SEEDCODER_CONFIG": str(config), "GITHUB_TOKEN": TOKEN,
                                                 "SEEDCODER_PROFILE": "local"})
        try:
            airflow.cli("db", "migrate")
            airflow.cli("dags", "reserialize")
            airflow.cli("backfill", "create", "--dag-id", "crawl", "--from-date", f"{months[0]}-01",
                        "--to-date", f"{months[-1]}-28", "--max-active-runs", "1")
            # The scheduler starts runs of unpaused DAGs only, backfill runs included. Unpausing after the
            # backfill exists adds no scheduled run: catchup finds every month of the DAG's window taken.
            airflow.cli("dags", "unpause", "crawl")
            airflow.start("api-server", "--apps", "execution", "--port", str(airflow.port), "--workers", "1")
            airflow.start("scheduler")
            airflow.wait_backfills_done(1, timeout=1500)
            yield {"airflow": airflow, "lake": Lake.at(str(root / "lake")), "fake": fake, "months": months}
        finally:
            airflow.stop()


def test_a_three_month_backfill_makes_three_snapshot_partitions(backfilled):
    airflow, lake, months = backfilled["airflow"], backfilled["lake"], backfilled["months"]
    runs = airflow.runs()
    assert [(str(d)[:10], state, kind) for d, state, kind in runs] == [
        (f"{month}-01", "success", "backfill") for month in months], airflow.task_logs()
    assert lake.snapshots() == list(months)
    for month in months:
        info = lake.require(month, "crawl")
        assert {"files", "commits", "rejects", "repos"} <= set(info.datasets)
        assert info.stats["metrics"]["source"] == "github"
    assert {c["message"] for c in lake.read_table(months[1], "crawl", "commits").to_pylist()} == {"Add the encoder"}


def test_rerunning_one_month_replaces_only_that_partition(backfilled):
    airflow, lake, months = backfilled["airflow"], backfilled["lake"], backfilled["months"]
    first, second, third = months
    before = {m: lake.require(m, "crawl").attempt for m in months}
    airflow.cli("backfill", "create", "--dag-id", "crawl", "--from-date", f"{second}-01", "--to-date", f"{second}-01",
                "--reprocess-behavior", "completed", "--max-active-runs", "1")
    airflow.wait_backfills_done(2, timeout=900)
    after = {m: lake.require(m, "crawl").attempt for m in months}
    assert after[first] == before[first] and after[third] == before[third]
    assert after[second] != before[second]
    assert lake.stats(second, "crawl")["metrics"]["repositories"]["fetched"] == 0, "all from the fetch cache"
    assert [kind for _, _, kind in airflow.runs()] == ["backfill"] * 3, "no scheduled run joined the backfill's"
