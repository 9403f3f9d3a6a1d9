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
    assert {"crawl", "dedup", "release", "scorer"} <= set(dagbag.dag_ids)
    assert len(dagbag.dag_ids) == len(DAG_FILES)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_house_rules(dagbag, path):
    dag = dagbag.dags.get(path.stem)
    assert dag is not None, f"{path.name} must define dag_id={path.stem!r} (dag_id=Path(__file__).stem)"
    assert dag.tags and "seedcoder" in dag.tags
    assert dag.default_args.get("retries", 0) >= 1
    assert dag.doc_md and len(dag.doc_md) > 80
    assert dag.start_date is not None and dag.start_date.utcoffset().total_seconds() == 0
    task_ids = set(dag.task_ids)
    kinds = [k for k in ("snapshot", "release", "scorer") if k in dag.params and k in task_ids]
    assert len(kinds) == 1, "every DAG takes its partition (snapshot, release or scorer version) as a param " \
                            "and resolves it in a task of that name"
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


def test_snapshot_param_pattern_and_partition_flags_are_the_lakes():
    from stage_launcher import PARTITION_FLAGS, SNAPSHOT_PATTERN

    from lake.cli import FLAGS
    from lake.stage import PARTITION_LAYOUT, SNAPSHOT_RE

    assert SNAPSHOT_PATTERN == SNAPSHOT_RE.pattern
    assert PARTITION_FLAGS == {kind: flag for kind, (flag, _help) in FLAGS.items()}
    assert set(PARTITION_FLAGS) == set(PARTITION_LAYOUT)


def test_model_dags_run_on_releases_never_on_a_monthly_crawl(dagbag):
    def triggers(dag_id: str) -> list[str]:
        condition = getattr(dagbag.dags[dag_id].timetable, "asset_condition", None)
        return [a.uri for a in condition.objects] if condition is not None else []

    assert triggers("dataset") == ["seedcoder://lake/release"]
    assert triggers("pretrain") == ["seedcoder://lake/dataset"]
    assert triggers("release") == [] and triggers("scorer") == [], "cut and trained when a user asks"
    assert triggers("quality") == ["seedcoder://lake/filters"]
    assert set(dagbag.dags["quality"].task_ids) == {"snapshot", "score", "quality_filter", "publish_quality_filter"}
    assert dagbag.dags["dedup"].get_task("wait_for_earlier_near_dedup").downstream_task_ids == {"exact_dedup"}
