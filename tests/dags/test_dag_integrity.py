"""DAG integrity: every DAG file imports cleanly, follows the house rules, and stays light at parse time."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (REPO / "dags").glob("*.py") if p.name != "assets.py")
HEAVY = ["torch", "pyspark", "vllm", "transformers", "deepspeed", "pandas", "pyarrow", "tree_sitter", "datasketch"]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"crawl", "dedup"} <= set(dagbag.dag_ids)
    assert len(dagbag.dag_ids) == len(DAG_FILES)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_house_rules(dagbag, path):
    dag = dagbag.dags.get(path.stem)
    assert dag is not None, f"{path.name} must define dag_id={path.stem!r} (dag_id=Path(__file__).stem)"
    assert dag.tags and "seedcoder" in dag.tags
    assert dag.default_args.get("retries", 0) >= 1
    assert dag.doc_md and len(dag.doc_md) > 80
    assert dag.start_date is not None and dag.start_date.utcoffset().total_seconds() == 0
    assert "snapshot" in dag.params, "every DAG takes the snapshot param for manual runs"
    task_ids = set(dag.task_ids)
    assert "snapshot" in task_ids
    assert any(t.startswith("publish_") for t in task_ids), "every DAG publishes the Asset of its last stage"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_parse_imports_nothing_heavy(path):
    """Parse cost is dominated by imports: the file must not pull in torch, Spark, vLLM and the like."""
    code = f"""
import json, sys, time
sys.path[:0] = [{str(REPO / 'dags')!r}, {str(REPO / 'plugins')!r}]
import airflow.sdk  # the SDK itself is the baseline every DAG pays
t0 = time.perf_counter()
import runpy; runpy.run_path({str(path)!r})
print(json.dumps({{"seconds": time.perf_counter() - t0, "modules": sorted(sys.modules)}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                              "AIRFLOW_HOME": str(REPO / ".work" / "airflow-tests")})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    heavy = [m for m in HEAVY if m in result["modules"]]
    assert heavy == [], f"{path.name} imports {heavy} at parse time"
    print(f"{path.name}: parsed in {result['seconds'] * 1000:.0f} ms beyond airflow.sdk")


def test_ruff_air3_clean():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "AIR3", str(REPO / "dags")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_snapshot_param_pattern_is_the_lakes():
    from stage_launcher import SNAPSHOT_PATTERN

    from lake.stage import SNAPSHOT_RE

    assert SNAPSHOT_PATTERN == SNAPSHOT_RE.pattern
