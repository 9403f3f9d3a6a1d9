"""The chart's init job, run for real: its script against a PostgreSQL from scripts/services.sh.

The rendered Job's `bash -ec` script migrates Airflow's schema and creates the GPU pool with include_deferred;
here it runs with this venv's Airflow against a private PostgreSQL (own port and data dir), and the pool is read
back through Airflow's CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helm.chart_tools import REPO

SERVICES = REPO / "scripts" / "services.sh"
VENV_BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.skipif(not (shutil.which("pg_ctl") or list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))),
                                 reason="PostgreSQL is not installed (apt-get install postgresql)")]


@pytest.fixture
def pg_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_init_job_migrates_and_creates_the_pool(render, pg_port):
    job = next(o for o in render({"stages": {"gpuPool": {"name": "h100", "slots": 3}}}) if o["kind"] == "Job")
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][2]

    services = Path(tempfile.mkdtemp(prefix="seedcoder-init-job-"))
    services.chmod(0o755)  # the postgres user must reach its data dir
    env = dict(os.environ, SEEDCODER_SERVICES_DIR=str(services), SEEDCODER_PG_PORT=str(pg_port))
    airflow_env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
                       AIRFLOW_HOME=str(services / "airflow-home"),
                       AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=(
                           f"postgresql+psycopg2://airflow:airflow@127.0.0.1:{pg_port}/airflow"))
    try:
        started = subprocess.run(["bash", str(SERVICES), "start", "postgres"], env=env, capture_output=True,
                                 text=True, timeout=180)
        assert started.returncode == 0, started.stdout + started.stderr
        for _ in range(2):  # the hook runs on every install and upgrade: it must be repeatable
            init = subprocess.run(["bash", "-ec", script], env=airflow_env, capture_output=True, text=True,
                                  timeout=600)
            assert init.returncode == 0, init.stdout[-3000:] + init.stderr[-3000:]
        pools = subprocess.run(["airflow", "pools", "get", "h100", "-o", "json"], env=airflow_env,
                               capture_output=True, text=True, timeout=180)
        assert pools.returncode == 0, pools.stderr
        (pool,) = json.loads(pools.stdout)
        assert (pool["slots"], pool["include_deferred"]) == ("3", "True")
    finally:
        subprocess.run(["bash", str(SERVICES), "stop", "postgres"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(services, ignore_errors=True)
