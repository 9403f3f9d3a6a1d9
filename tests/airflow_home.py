"""A throw-away Airflow for tests that need a real scheduler: SQLite metadata, this repository's dags/ and plugins/,
the execution API server, and every process it started stopped at the end.

Airflow 3 runs backfills and Asset-triggered runs in the scheduler, and its LocalExecutor workers talk to the
execution API, so a test starts both (`airflow scheduler`, `airflow api-server --apps execution`) and serializes the
DAGs with `airflow dags reserialize`. DAGs are paused at creation; a test unpauses the ones it exercises.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import sqlalchemy

from tests.processes import stop_process_groups

REPO = Path(__file__).resolve().parents[1]

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
        stop_process_groups(*self.procs)

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

    def runs(self, dag_id: str = "crawl") -> list[tuple]:
        """(logical date as text, state, run type) of ``dag_id``'s runs; SQLite returns the date as text,
        PostgreSQL as a datetime: both become ``YYYY-MM-DD ...``."""
        rows = self.query(f"SELECT logical_date, state, run_type FROM dag_run WHERE dag_id='{dag_id}' "
                          "ORDER BY logical_date")
        return [(None if d is None else str(d), state, kind) for d, state, kind in rows]

    def log_tail(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def task_logs(self) -> str:
        logs = sorted((self.home / "logs").rglob("*.log")) if (self.home / "logs").exists() else []
        return "\n".join(f"== {p}\n{p.read_text(errors='replace')[-1500:]}" for p in logs[-4:])
