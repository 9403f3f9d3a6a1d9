"""End to end in a real browser: a snapshot run through the DAGs, `airflow api-server` with the plugin, Chromium.

The test runs the crawl, dedup and filters DAGs on a small source (``dag.test()`` through scripts/pipeline.py, the
README's main command), starts `airflow api-server` on loopback over the same metadata database and lake, logs in
through Airflow's login form in headless Chromium (Debian's package, driven by Playwright: no browser download),
opens the snapshot's funnel inside the Airflow UI, and checks that every number on the page is the committed one.
It then opens the dedup DAG run's page, whose "Snapshot funnel" tab must land on the same funnel. Screenshots go
to ``$SEEDCODER_TEST_ARTIFACTS`` (default ``.work/test-artifacts``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lake.stage import Lake
from tests.processes import stop_process_groups

pytestmark = [pytest.mark.spark, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SNAPSHOT = "2026-10"
DAGS = "crawl,dedup,filters"
FUNNEL_STAGES = ["crawl", "exact_dedup", "near_dedup", "syntax_filter", "rule_filter", "decontaminate", "pii_redact"]
ARTIFACTS = Path(os.environ.get("SEEDCODER_TEST_ARTIFACTS", REPO / ".work" / "test-artifacts"))
PASSWORD = "ui-test-password"
# Seven Spark stages through dag.test(): ~5 min on an idle 2-core machine, 20+ min when others share the cores.
PIPELINE_TIMEOUT_S = 2400


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The source, the lake, the Airflow home; the DAGs run once for the module."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium is missing: apt-get install -y chromium (scripts/test.sh installs it)")
    pytest.importorskip("playwright")
    tmp = tmp_path_factory.mktemp("ui-e2e")
    source = tmp / "source"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for repo, name in (("acme__json", "json"), ("fork__json", "json"), ("acme__mail", "email")):
        shutil.copytree(stdlib / name, source / repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    (source / "acme__json" / ".repo.json").write_text(json.dumps({"repo": "acme/json", "stars": 50, "license": "MIT"}))
    (source / "fork__json" / ".repo.json").write_text(json.dumps({"repo": "fork/json", "stars": 1}))
    # a binary reject: a known extension (an unknown one is dropped as unknown_language before it is read)
    (source / "acme__mail" / "email" / "_blob.py").write_bytes(bytes(range(256)) * 4)
    home = tmp / "airflow"
    home.mkdir()
    config = tmp / "local.yaml"
    config.write_text(json.dumps({"profile": "local", "lake": {"root": str(tmp / "lake")},
                                  "spark": {"driver_memory": "1g", "shuffle_partitions": 4},
                                  "stages": {"crawl": {"local_root": str(source)}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(SEEDCODER_CONFIG=str(config), SEEDCODER_PROFILE="local", AIRFLOW_HOME=str(home),
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db?timeout=60",
               AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"), AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
               AIRFLOW__CORE__LOAD_EXAMPLES="False", PYSPARK_PYTHON=sys.executable,
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    log = tmp / "pipeline.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "scripts/pipeline.py", "--snapshot", SNAPSHOT, "--dags", DAGS,
                                 "--airflow-home", str(home)], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=PIPELINE_TIMEOUT_S)
        finally:
            if proc.poll() is None:  # timed out (or the test was interrupted): Spark's JVMs go with the group
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert rc == 0, log.read_text()[-6000:]
    return {"env": env, "home": home, "lake": Lake.at(str(tmp / "lake"))}


@pytest.fixture(scope="module")
def api_server(world):
    """`airflow api-server` on loopback: the plugin loaded from plugins/, a user with a password."""
    home, port = world["home"], free_port()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    env = dict(world["env"], AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
               AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
               AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}")
    log = (home / "api-server.log").open("w")
    proc = subprocess.Popen(["airflow", "api-server", "--host", "127.0.0.1", "--port", str(port), "--apps", "core",
                             "--workers", "1"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"api-server did not come up:\n{(home / 'api-server.log').read_text()[-4000:]}")
            time.sleep(1)
        yield base
    finally:
        stop_process_groups(proc)
        log.close()


def number(text: str) -> int:
    return int(text.strip().replace(",", ""))


@pytest.mark.timeout(PIPELINE_TIMEOUT_S + 900)
def test_funnel_page_in_the_airflow_ui_shows_the_committed_numbers(world, api_server):
    from playwright.sync_api import sync_playwright

    lake: Lake = world["lake"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                           "--disable-component-update", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1600, "height": 1500})
        try:
            page.goto(f"{api_server}/")
            page.wait_for_selector("input[name=username]", timeout=120_000)
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/auth/" not in url, timeout=120_000)

            # Browse > Lake, deep-linked to the snapshot's funnel: the page is the plugin's, inside the Airflow UI
            page.goto(f"{api_server}/plugin/seedcoder-lake/seedcoder/snapshots/{SNAPSHOT}")
            frame = wait_for_frame(page, f"/seedcoder/snapshots/{SNAPSHOT}")
            frame.wait_for_selector("table[data-testid=funnel]", timeout=120_000)
            shown = []
            for stage in FUNNEL_STAGES:
                stats = lake.stats(SNAPSHOT, stage)
                row = frame.locator(f'table[data-testid=funnel] tr[data-stage="{stage}"]')
                cells = {f: number(row.locator(f'td[data-field="{f}"]').inner_text())
                         for f in ("records_in", "records_out", "dropped")}
                assert cells == {"records_in": stats["records_in"], "records_out": stats["records_out"],
                                 "dropped": stats["records_dropped"]}, stage
                for reason, n in stats["drop_reasons"].items():
                    if n:
                        badge = row.locator(f'[data-reason="{reason}"]')
                        assert number(badge.get_attribute("data-value")) == n
                        assert badge.inner_text().endswith(f"{n:,}")
                assert row.locator('[data-field="state"]').inner_text() == "committed"
                shown.append(stage)
            assert shown == FUNNEL_STAGES
            assert number(frame.locator("[data-testid=total-in]").inner_text()) == lake.stats(SNAPSHOT, "crawl")[
                "records_in"]
            assert lake.stats(SNAPSHOT, "crawl")["drop_reasons"].get("binary", 0) >= 1
            page.screenshot(path=str(ARTIFACTS / "ui-funnel.png"), full_page=True)

            # the dedup run's page has a "Snapshot funnel" tab that lands on the same funnel
            run_link = frame.locator('tr[data-stage="near_dedup"] a[data-link="run"]').first.get_attribute("href")
            assert run_link.startswith("/dags/dedup/runs/")
            page.goto(f"{api_server}{run_link}/plugin/seedcoder-funnel")
            tab = wait_for_frame(page, f"/seedcoder/snapshots/{SNAPSHOT}")
            tab.wait_for_selector('table[data-testid=funnel] tr[data-stage="near_dedup"]', timeout=120_000)
            near = lake.stats(SNAPSHOT, "near_dedup")
            assert number(tab.locator('tr[data-stage="near_dedup"] td[data-field="records_out"]').inner_text()) == \
                near["records_out"]
            page.screenshot(path=str(ARTIFACTS / "ui-dag-run-tab.png"), full_page=True)

            # the snapshot list, and the dedup page's repository-level cluster
            page.goto(f"{api_server}/plugin/seedcoder-lake/seedcoder/snapshots/{SNAPSHOT}/dedup")
            dedup = wait_for_frame(page, f"/seedcoder/snapshots/{SNAPSHOT}/dedup")
            dedup.wait_for_selector("[data-testid=exact_dedup-repo-largest]", timeout=120_000)
            assert "fork/json" in dedup.locator("[data-testid=exact_dedup-repo-largest]").inner_text()
            page.screenshot(path=str(ARTIFACTS / "ui-dedup.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "ui-failure.png"), full_page=True)
            (ARTIFACTS / "ui-failure.html").write_text("\n\n".join(f"<!-- {f.url} -->\n{f.content()}"
                                                                  for f in page.frames))
            raise
        finally:
            browser.close()


def wait_for_frame(page, path: str, timeout: float = 120.0):
    """The plugin's iframe once it shows ``path`` (the Airflow page around it has the path under /plugin/...)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for frame in page.frames:
            if frame is not page.main_frame and urlsplit(frame.url).path == path:
                return frame
        page.wait_for_timeout(250)
    raise AssertionError(f"no frame at {path}; frames: {[f.url for f in page.frames]}")
