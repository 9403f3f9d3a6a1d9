"""The crawl and dedup DAGs run with dag.test() against a real lake, through the main command, on PostgreSQL.

PostgreSQL comes from scripts/services.sh (started by scripts/test.sh / .ci/run), which exports
SEEDCODER_POSTGRES_URI; on CI its absence is a failure, elsewhere (no server started) the run uses SQLite. SQLite,
the main command's default, is what the other DAG runs use (the same main command over crawl, dedup and filters in
tests/plugins/test_seedcoder_ui_browser.py; the quality, pretraining and self-curation runs; the scheduler's
backfill), so this test spends its run on the backend nothing else covers.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from lake.stage import Lake

pytestmark = [pytest.mark.spark, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def backend():
    """PostgreSQL where scripts/services.sh started it (always on CI), SQLite elsewhere."""
    uri = os.environ.get("SEEDCODER_POSTGRES_URI")
    if uri or os.environ.get("CI"):
        return pytest.param(uri, id="postgres", marks=pytest.mark.postgres)
    return pytest.param("sqlite", id="sqlite")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("dagsrc") / "source"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for repo, names in {"acme__json": ["json"], "fork__json": ["json"], "acme__mail": ["email"]}.items():
        for name in names:
            shutil.copytree(stdlib / name, root / repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "acme__json" / ".repo.json").write_text(json.dumps({"repo": "acme/json", "stars": 50, "license": "MIT"}))
    (root / "fork__json" / ".repo.json").write_text(json.dumps({"repo": "fork/json", "stars": 1}))
    return root


@pytest.mark.parametrize("db", [backend()])
def test_crawl_then_dedup_through_airflow(db, source, tmp_path):
    if db is None and os.environ.get("CI"):
        pytest.fail("CI must provide PostgreSQL: SEEDCODER_POSTGRES_URI is not set (scripts/services.sh start)")
    home = tmp_path / "airflow"
    cfg = tmp_path / "local.yaml"
    cfg.write_text(json.dumps({"profile": "local", "lake": {"root": str(tmp_path / "lake")},
                               "spark": {"driver_memory": "1g", "shuffle_partitions": 4},
                               "stages": {"crawl": {"local_root": str(source)}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(SEEDCODER_CONFIG=str(cfg), AIRFLOW_HOME=str(home), PYSPARK_PYTHON=sys.executable)
    if db == "sqlite":
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db"
    else:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = db  # migrations are idempotent; runs get fresh run ids
    out = subprocess.run([sys.executable, "scripts/pipeline.py", "--snapshot", "2026-10", "--dags", "crawl,dedup",
                          "--airflow-home", str(home), "--timing-json", str(tmp_path / "timing.json")], cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "DAG crawl      success" in out.stdout and "DAG dedup      success" in out.stdout
    lake = Lake.at(str(tmp_path / "lake"))
    crawl = lake.stats("2026-10", "crawl")
    dedup = lake.stats("2026-10", "exact_dedup")
    assert crawl["records_out"] > 30 and dedup["records_in"] == crawl["records_out"]
    assert dedup["drop_reasons"]["exact_duplicate_repo"] > 0, "fork/json is a copy of acme/json"
    kept = lake.read_table("2026-10", "exact_dedup", "files", columns=["repo"]).column("repo").to_pylist()
    assert "fork/json" not in kept and "acme/json" in kept
    assert "exact_dedup" in out.stdout and "_stats.json" in out.stdout
    # the chain's Spark stages ran in the main command's warm driver, and the breakdown says what each cost
    assert "warm Spark driver up" in out.stdout and "Time per stage" in out.stdout
    assert "spark_session" not in dedup["fixed_costs"] and dedup["wall_seconds"] > 0
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert [d["dag"] for d in timing["dags"]] == ["crawl", "dedup"] and timing["warm_spark"]["used"]
    assert [[s["stage"] for s in d["stages"]] for d in timing["dags"]] == [["crawl"], ["exact_dedup", "near_dedup"]]
    assert all(d["outside_stages"] >= 0 for d in timing["dags"]), timing
    # what the UI's dedup page shows: fork/json is one repository-level cluster with acme/json
    assert dedup["metrics"]["clusters"]["repo"]["largest"] == [{"size": 2, "kept": "acme/json", "example": "fork/json"}]
    assert sum(dedup["metrics"]["records_out_by_language"].values()) == dedup["records_out"]
