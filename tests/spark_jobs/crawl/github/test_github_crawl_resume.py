"""Kill the crawl (SIGKILL, the whole process group: driver, JVM, Python workers) mid-fetch, run it again.

The re-run adopts the killed attempt: discovery and selection are not redone (no GH Archive or API request),
repositories fetched before the kill come from the cache (no second download), and the committed datasets hold
each record once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from fake_github import FakeGitHub, Fault, git, wait_until
from scenario import REPO, TOKEN, build, write_config

from lake.stage import Lake

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def spawn(config, month: str, log) -> subprocess.Popen:
    env = {**os.environ, "GITHUB_TOKEN": TOKEN, "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable}
    return subprocess.Popen([sys.executable, "-m", "spark_jobs.crawl", "--snapshot", month, "--config", str(config)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def test_kill_mid_crawl_then_rerun_neither_redownloads_nor_duplicates(tmp_path):
    with FakeGitHub(token=TOKEN) as fake:
        repos = build(fake, tmp_path / "repos")
        config = write_config(tmp_path / "config.yaml", fake, tmp_path / "lake", timeout_s=900)
        lake = Lake.at(str(tmp_path / "lake"))
        head = git(repos["py/mailer"].git_dir, "rev-list", "-1", "--before=2026-09-01T00:00:00Z", "main")
        stalled = f"/codeload/py/mailer/legacy.tar.gz/{head}"
        fake.fault(stalled, Fault(200, delay_s=600))
        cache = tmp_path / "lake" / "_cache" / "github" / "tarballs"

        with open(tmp_path / "run1.log", "wb") as log:
            proc = spawn(config, "2026-08", log)
            try:
                wait_until(lambda: fake.requests[stalled] == 1 and len(list(cache.rglob("*.parquet"))) >= 2
                           or proc.poll() is not None, timeout=400)
                cached = {p.parent.name.replace("%2F", "/") for p in cache.rglob("*.parquet")}
            finally:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert lake.commit_info("2026-08", "crawl") is None, "a killed crawl commits nothing"
        before = dict(fake.requests)
        codeload_before = {p: n for p, n in before.items() if p.startswith("/codeload/")}
        assert len(cached) >= 2 and "py/mailer" not in cached, (tmp_path / "run1.log").read_text()[-3000:]

        with open(tmp_path / "run2.log", "wb") as log:
            assert spawn(config, "2026-08", log).wait(timeout=500) == 0, (tmp_path / "run2.log").read_text()[-3000:]

        after = dict(fake.requests)
        redone = {p: after[p] - before.get(p, 0) for p in after if p.startswith(("/gharchive/", "/api/"))
                  and "/tarball/" not in p and after[p] != before.get(p, 0)}
        assert redone == {}, "discovery and selection were resumed, not redone"
        for path, count in codeload_before.items():
            repo = "/".join(path.split("/")[2:4])
            again = after[path] - count
            if repo in cached:
                assert again == 0, f"{repo} was fetched before the kill and must come from the cache"
        assert after[stalled] - codeload_before[stalled] == 1, "the download cut by the kill is fetched again"
        files = lake.read_table("2026-08", "crawl", "files").to_pylist()
        assert len({f["id"] for f in files}) == len(files)
        assert {f["repo"] for f in files} == {"py/jsonkit", "py/mailer", "py/tinyhttp", "evil/hostile"}
        mailer = [f for f in files if f["repo"] == "py/mailer"]
        assert len(mailer) == 7
        assert lake.stats("2026-08", "crawl")["metrics"]["repositories"]["from_cache"] == len(cached)
