"""The filters DAG: its structure, and a dag.test() run of the four stages through Airflow on a committed input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from filter_records import commit_input, record

from lake.stage import Lake

REPO = Path(__file__).resolve().parents[3]
STAGES = ["syntax_filter", "rule_filter", "decontaminate", "pii_redact"]


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "filters.py"))
    assert bag.import_errors == {}
    return bag.dags["filters"]


def test_stages_run_in_order_then_publish(dag):
    chain, task = [], dag.get_task("snapshot")
    while task.downstream_task_ids:
        nxt = sorted(task.downstream_task_ids - {"publish_pii_redact"}) or ["publish_pii_redact"]
        task = dag.get_task(nxt[0])
        chain.append(task.task_id)
    assert chain == [*STAGES, "publish_pii_redact"]
    assert [dag.get_task(s).module for s in STAGES] == [f"spark_jobs.filters.{s}" for s in STAGES]
    assert "publish_pii_redact" in dag.get_task("snapshot").downstream_task_ids  # it reads the snapshot id
    assert [a.uri for a in dag.get_task("publish_pii_redact").outlets] == ["seedcoder://lake/filters"]


def test_scheduled_on_the_dedup_asset(dag):
    assert "seedcoder://lake/dedup" in str(dag.timetable.asset_condition)
    assert dag.params["snapshot"] is None and "filters" in dag.tags


@pytest.mark.spark
@pytest.mark.slow  # four Spark stages as subprocesses under Airflow: minutes on shared cores
def test_filters_dag_runs_and_publishes(tmp_path):
    lake = Lake.at(str(tmp_path / "lake"))
    commit_input(lake, [[record("ok.py", "def f(x):\n    return x\n"), record("bad.py", "def f(:\n"),
                         record("yarn.lock", "# yarn lockfile v1\n"),
                         record("s.py", 'OWNER = "dev@example-corp.com"\n')]], snapshot="2026-10")
    home = tmp_path / "airflow"
    cfg = tmp_path / "local.yaml"
    cfg.write_text(json.dumps({"profile": "local", "lake": {"root": str(tmp_path / "lake")},
                               "spark": {"driver_memory": "1g", "shuffle_partitions": 2}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(SEEDCODER_CONFIG=str(cfg), SEEDCODER_PROFILE="local", AIRFLOW_HOME=str(home),
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db", PYSPARK_PYTHON=sys.executable)
    out = subprocess.run([sys.executable, "scripts/pipeline.py", "--snapshot", "2026-10", "--dags", "filters",
                          "--airflow-home", str(home)], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=1500)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "DAG filters" in out.stdout and "success" in out.stdout
    assert lake.stats("2026-10", "syntax_filter")["drop_reasons"] == {"syntax_error": 1}
    assert lake.stats("2026-10", "rule_filter")["drop_reasons"] == {"lock_file": 1}
    assert lake.stats("2026-10", "pii_redact")["metrics"]["step"] == {"files_redacted": 1, "redacted:email": 1}
    final = lake.read_table("2026-10", "pii_redact", "files").to_pylist()
    assert sorted(r["path"] for r in final) == ["ok.py", "s.py"]
    assert next(r for r in final if r["path"] == "s.py")["content"] == 'OWNER = "<EMAIL>"\n'
