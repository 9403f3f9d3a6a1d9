"""Stages as the launcher runs them (subprocesses): re-runs are byte-identical, a kill mid-write loses nothing."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stdlib_source import records, stage_env, two_repo_source

from lake.stage import Lake

pytestmark = [pytest.mark.spark, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A small source of real stdlib code (two overlapping 'repositories') and a config pointing at it."""
    base = tmp_path_factory.mktemp("kill")
    cfg = two_repo_source(base)
    env = stage_env()
    subprocess.run([sys.executable, "-m", "spark_jobs.crawl", "--snapshot", "s", "--config", str(cfg)],
                   cwd=REPO, env=env, check=True, capture_output=True)
    return cfg, env, Lake.at(str(base / "lake"))


def stage(cfg, env, module="spark_jobs.exact_dedup", **kw):
    return subprocess.Popen([sys.executable, "-m", module, "--snapshot", "s", "--config", str(cfg)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, **kw)


def test_rerun_is_byte_identical_and_kill_loses_nothing(setup):
    cfg, env, lake = setup
    assert stage(cfg, env).wait() == 0
    first = records(lake, "exact_dedup")
    assert len(first) > 1000
    assert stage(cfg, env).wait() == 0
    committed = lake.require("s", "exact_dedup")
    assert records(lake, "exact_dedup") == first, "same input and config must give byte-identical records"

    proc = stage(cfg, env)
    stage_dir = Path(lake.root) / "snapshot=s" / "exact_dedup"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait until the new attempt is mid-write, then kill the whole group
        attempts = [p for p in stage_dir.glob("attempt=*") if p.name != f"attempt={committed.attempt}"]
        if attempts and any((a / "files").exists() for a in attempts):
            break
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert lake.require("s", "exact_dedup").attempt == committed.attempt, "a killed run must not commit"
    assert records(lake, "exact_dedup") == first, "the committed partition is intact after the kill"
    abandoned = [p for p in stage_dir.glob("attempt=*") if p.name != f"attempt={committed.attempt}"]
    assert abandoned, "the killed attempt's partial output exists until the next commit"

    assert stage(cfg, env).wait() == 0
    assert records(lake, "exact_dedup") == first, "re-run after a kill gives the same committed output"
    assert [p.name for p in stage_dir.glob("attempt=*")] == [f"attempt={lake.require('s', 'exact_dedup').attempt}"]
    digests = {hashlib.sha256(Path(lake.root, k).read_bytes()).hexdigest()
               for k in lake.dataset_keys("s", "exact_dedup", "files")}
    assert len(digests) == len(lake.dataset_keys("s", "exact_dedup", "files"))
