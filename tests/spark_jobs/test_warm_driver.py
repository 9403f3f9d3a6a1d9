"""The chain's warm Spark driver: stages run in it give the very output their own processes give, pay no Spark
session, leave no settings behind, fail without taking it down, and a vanished client stops it like a kill."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stdlib_source import records, stage_env, two_repo_source

from lake import warm_spark
from lake.stage import Lake

pytestmark = [pytest.mark.spark, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Real stdlib code as two overlapping repositories and a config pointing at it (nothing run yet)."""
    base = tmp_path_factory.mktemp("warm")
    cfg = two_repo_source(base)
    env = stage_env()
    env.pop(warm_spark.ENV, None)
    return cfg, env, Lake.at(str(base / "lake")), base


@pytest.fixture(scope="module")
def driver(setup):
    cfg, env, _lake, base = setup
    sock = base / "driver.sock"
    proc = start_driver(cfg, env, sock)
    yield sock
    stop_driver(proc, sock)
    assert proc.returncode == 0 and not sock.exists()


@pytest.fixture(scope="module")
def reference(setup, driver):
    """Snapshot ``s`` crawled in the warm driver (the main command runs the crawl there too), then deduplicated by
    the stages' own processes: the reference output."""
    cfg, env, lake, _base = setup
    status, lines = warm(driver, cfg, "spark_jobs.crawl")
    assert status == 0, "\n".join(lines[-30:])
    assert lake.stats("s", "crawl")["records_out"] > 30
    for module in ("spark_jobs.exact_dedup", "spark_jobs.near_dedup"):
        cold(cfg, env, module)
    return {stage: records(lake, stage) for stage in ("exact_dedup", "near_dedup")}


def cold(cfg, env, module):
    subprocess.run([sys.executable, "-m", module, "--snapshot", "s", "--config", str(cfg)], cwd=REPO, env=env,
                   check=True, capture_output=True)


def start_driver(cfg, env, sock: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "spark_jobs.warm_driver", "--socket", str(sock), "--config",
                             str(cfg)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while warm_spark.ping(sock) is None:
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the warm driver did not start in 180 s"
        time.sleep(0.3)
    return proc


def stop_driver(proc: subprocess.Popen, sock: Path) -> None:
    if proc.poll() is None:
        list(warm_spark.request(sock, {"op": "stop"}, timeout=60))
        proc.wait(60)


def warm(sock: Path, cfg, module: str, snapshot: str = "s") -> tuple[int, list[str]]:
    lines, status = [], None
    for answer in warm_spark.request(sock, {"op": "run", "module": module,
                                             "argv": ["--snapshot", snapshot, "--config", str(cfg)]}):
        lines += [answer["out"]] if "out" in answer else []
        status = answer.get("exit", status)
    return status, lines


def test_stages_in_the_warm_driver_match_their_own_processes_and_leave_nothing_behind(setup, driver, reference):
    cfg, _env, lake, _base = setup
    cold_stats = lake.stats("s", "near_dedup")
    # (what was paid, not how long: a fast machine started the cold process in 0.494 s, under an old 0.5 s bound)
    assert cold_stats["fixed_costs"]["spark_session"] > 0, cold_stats["fixed_costs"]
    assert cold_stats["fixed_costs"]["process_start"] > 0, cold_stats["fixed_costs"]
    served = warm_spark.ping(driver)["served"]

    status, lines = warm(driver, cfg, "spark_jobs.exact_dedup")
    assert status == 0, "\n".join(lines[-30:])
    assert any("committed snapshot=s/exact_dedup" in line for line in lines), lines[-10:]
    assert records(lake, "exact_dedup") == reference["exact_dedup"]
    for _ in range(2):  # twice: the second run sees whatever the first left in the driver
        status, lines = warm(driver, cfg, "spark_jobs.near_dedup")
        assert status == 0, "\n".join(lines[-30:])
        assert records(lake, "near_dedup") == reference["near_dedup"]
        # near dedup sizes Arrow batches through Spark SQL settings: the driver puts them back after it
        assert warm_spark.ping(driver)["conf_drift"] == []
    stats = lake.stats("s", "near_dedup")
    assert "spark_session" not in stats["fixed_costs"], stats["fixed_costs"]

    # A failing stage reports its failure and the driver lives on.
    status, lines = warm(driver, cfg, "spark_jobs.exact_dedup", snapshot="missing")
    assert status == 2 and any("missing" in line for line in lines), lines[-10:]
    assert warm_spark.ping(driver)["served"] == served + 4


def test_the_local_operator_uses_the_driver_and_falls_back_without_one(setup, driver, reference, monkeypatch):
    from stage_launcher import LocalStageOperator

    cfg, _env, lake, base = setup
    op = LocalStageOperator(task_id="exact_dedup", stage="exact_dedup", module="spark_jobs.exact_dedup", ids="s",
                            extra_args=["--config", str(cfg)])
    monkeypatch.setenv("SEEDCODER_CONFIG", str(cfg))
    served = warm_spark.ping(driver)["served"]
    monkeypatch.setenv(warm_spark.ENV, str(driver))
    summary = op.execute({})
    committed = lake.require("s", "exact_dedup")
    assert summary["attempt"] == committed.attempt
    assert "spark_session" not in committed.stats["fixed_costs"]
    assert warm_spark.ping(driver)["served"] == served + 1

    monkeypatch.setenv(warm_spark.ENV, str(base / "nobody-listens.sock"))
    op.execute({})  # no driver there: the stage's own process, as without the variable
    after = lake.require("s", "exact_dedup")
    assert after.attempt != committed.attempt and after.stats["fixed_costs"].get("spark_session", 0) > 0
    assert records(lake, "exact_dedup") == reference["exact_dedup"]


def test_a_vanished_client_stops_the_driver_and_its_stage_commits_nothing(setup, reference):
    cfg, env, lake, base = setup
    committed = lake.require("s", "near_dedup").attempt
    sock = base / "kill.sock"
    proc = start_driver(cfg, env, sock)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(sock))
            client.sendall((json.dumps({"op": "run", "module": "spark_jobs.near_dedup",
                                        "argv": ["--snapshot", "s", "--config", str(cfg)]}) + "\n").encode())
            with client.makefile("r") as reader:  # (the socket's file holds the connection open too)
                for line in reader:  # wait for the stage to start its attempt, then go away
                    if "starting snapshot=s/near_dedup" in json.loads(line).get("out", ""):
                        break
        assert proc.wait(30) == warm_spark.EXIT_CLIENT_GONE
    finally:
        if proc.poll() is None:
            proc.kill()
    assert lake.require("s", "near_dedup").attempt == committed, "the abandoned stage must not commit"
    assert warm_spark.ping(sock) is None
