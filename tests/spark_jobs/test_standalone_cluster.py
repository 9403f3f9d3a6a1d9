"""The Spark stages on a real cluster: a standalone master and worker on loopback, submitted to by Airflow.

Each stage's operator is the one the k8s profile builds (``stage_task`` with ``SEEDCODER_PROFILE=k8s``, templates
rendered for the run's snapshot); it is submitted through ``SparkSubmitOperator`` with the same application entry
point (lake/entry.py) and the same configuration minus the Kubernetes keys: what Kubernetes adds around it (the
driver's Secret references, the mounted platform configuration) becomes the driver's environment, and memory is
this machine's. The master and worker come from the pyspark distribution's ``spark-class``; executors run on the
worker in their own JVMs and Python workers, the driver in the test's spark-submit, and the cluster's own record
of finished applications proves every stage ran there. The crawl reads the crawl tests' fake GitHub, which
refuses requests without the token. This is the proof that the stages do not depend on Spark's local mode.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pendulum
import pytest
import yaml

from tests.processes import stop_process_groups

pytestmark = [pytest.mark.spark, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "spark_jobs" / "crawl" / "github"))
# The four filters share one runner (spark_jobs/filters/runner.py: mapInArrow of a pickled step); of them, the
# syntax filter (a native tree-sitter parser loaded in each executor's Python workers) and decontamination (an
# n-gram index broadcast from the driver, an eval set from a mounted volume) are the two whose cluster behaviour
# differs, so decontamination reads the syntax filter's output here. The rule filter and PII redaction are plain
# Python steps of the same runner, run on Spark by tests/spark_jobs/filters (each submission here costs ~45 s).
SPARK_STAGES = [("crawl", "spark_jobs.crawl"), ("exact_dedup", "spark_jobs.exact_dedup"),
                ("near_dedup", "spark_jobs.near_dedup"), ("syntax_filter", "spark_jobs.filters.syntax_filter"),
                ("decontaminate", "spark_jobs.filters.decontaminate")]
WORKER_MEMORY = "3g"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[1]} exited {proc.returncode}:\n{path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)
    raise TimeoutError(f"no {text!r} in {path} after {timeout}s:\n{path.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """A standalone master and one worker (2 cores) on loopback, from the pyspark distribution."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    root = tmp_path_factory.mktemp("standalone")
    master_port, master_ui, worker_ui = free_port(), free_port(), free_port()
    env = {**os.environ, "SPARK_HOME": str(spark_home), "SPARK_LOG_DIR": str(root), "SPARK_LOCAL_IP": "127.0.0.1",
           "PYSPARK_PYTHON": sys.executable,
           # The Spark image's PYTHONPATH (/opt/seedcoder): executors' Python workers import the stage code.
           "PYTHONPATH": str(REPO)}
    spark_class = str(spark_home / "bin" / "spark-class")
    procs = []
    try:
        master_log = root / "master.log"
        procs.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(master_port),
             "--webui-port", str(master_ui)], env=env, stdout=master_log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True))
        wait_for(master_log, "I have been elected leader", procs[0])
        url = f"spark://127.0.0.1:{master_port}"
        worker_log = root / "worker.log"
        procs.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--cores", "2",
             "--memory", WORKER_MEMORY, "--work-dir", str(root / "work"), "--webui-port", str(worker_ui)],
            env=env, stdout=worker_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True))
        wait_for(worker_log, "Successfully registered with master", procs[1])
        yield {"url": url, "port": master_port, "ui": f"http://127.0.0.1:{master_ui}", "logs": root}
    finally:
        stop_process_groups(*reversed(procs))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The crawl tests' three-month fake GitHub (real git repositories, hostile archives, faults)."""
    from datetime import UTC, datetime

    import scenario
    from fake_github import FakeGitHub

    root = tmp_path_factory.mktemp("world")
    months = scenario.months_before(datetime.now(UTC))
    with FakeGitHub(token=scenario.TOKEN) as fake:
        scenario.build(fake, root, months)
        yield fake, months[-1]


def k8s_config(path: Path, lake: Path, fake, eval_set: Path) -> Path:
    """config/k8s.yaml at the size of a test: the fake GitHub, few partitions, the lake on a directory."""
    cfg = yaml.safe_load((REPO / "config" / "k8s.yaml").read_text())
    cfg["lake"] = {"root": str(lake)}
    cfg["spark"].update(shuffle_partitions=4, driver_memory="1g")
    stages = cfg["stages"]
    stages["crawl"]["github"].update(
        api={"base_url": f"{fake.url}/api", "backoff_s": 0.2, "max_concurrency": 4},
        gharchive_url=f"{fake.url}/gharchive", max_missing_hours=1000, discovery_partitions=4, fetch_partitions=4,
        selection={"min_push_events": 1, "min_stars": 0, "commits_min_commits": 2})
    stages["crawl"]["output_partitions"] = 2
    stages["near_dedup"]["output_partitions"] = 4
    # a further set on the eval-sets volume (MBPP and HumanEval are built in)
    stages["decontaminate"]["eval_sets"]["files"] = [{"name": "extra", "path": str(eval_set)}]
    stages["decontaminate"]["input"] = "syntax_filter"  # the stages this test runs: see SPARK_STAGES
    path.write_text(yaml.safe_dump(cfg))
    return path


class FakeTaskInstance:
    def __init__(self, task_id: str, snapshot: str):
        self.dag_id, self.task_id, self.map_index, self.try_number = "standalone_test", task_id, -1, 1
        self.snapshot = snapshot

    def xcom_pull(self, task_ids=None, **_kw):
        assert task_ids == "snapshot"
        return self.snapshot


def on_standalone(k8s_op, conn_id: str, config: Path, secrets: dict[str, dict[str, str]]):
    """The k8s profile's operator as a submission to the standalone master: same application, arguments and
    configuration minus the Kubernetes keys; its driver Secrets and mounted configuration as environment."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    conf = {k: v for k, v in k8s_op.conf.items() if not k.startswith("spark.kubernetes.")}
    env = {k.removeprefix("spark.kubernetes.driverEnv."): v for k, v in k8s_op.conf.items()
           if k.startswith("spark.kubernetes.driverEnv.")}
    for key, ref in k8s_op.conf.items():
        if key.startswith("spark.kubernetes.driver.secretKeyRef."):
            secret, _, secret_key = ref.partition(":")
            env[key.removeprefix("spark.kubernetes.driver.secretKeyRef.")] = secrets[secret][secret_key]
    env["SEEDCODER_CONFIG"] = conf["spark.executorEnv.SEEDCODER_CONFIG"] = str(config)
    assert k8s_op.application == "local:///opt/seedcoder/lake/entry.py"
    return SparkSubmitOperator(
        task_id=k8s_op.task_id, conn_id=conn_id, application=str(REPO / "lake" / "entry.py"),
        application_args=list(k8s_op.application_args), conf=conf, name=k8s_op.name, deploy_mode="client",
        executor_memory="1g", driver_memory="1g", env_vars={**env, "PYSPARK_PYTHON": sys.executable,
                                                            "PYSPARK_DRIVER_PYTHON": sys.executable,
                                                            "PYTHONPATH": str(REPO)})


@pytest.mark.timeout(3000)
def test_the_spark_stages_run_on_a_standalone_cluster(standalone, world, tmp_path, monkeypatch):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
    from airflow.sdk import DAG
    from stage_launcher import stage_task

    from lake.stage import Lake

    fake, snapshot = world
    lake_root = tmp_path / "lake"
    eval_set = tmp_path / "extra.jsonl"
    eval_set.write_text(json.dumps({"text": "write a function to reverse the words of a sentence and return "
                                            "them joined by single spaces in the original order of the input"})
                        + "\n")
    config = k8s_config(tmp_path / "k8s.yaml", lake_root, fake, eval_set)
    # The Airflow pod's environment as the chart sets it, and the Secret the crawl declares.
    monkeypatch.setenv("SEEDCODER_PROFILE", "k8s")
    monkeypatch.setenv("SEEDCODER_CONFIG", str(config))
    monkeypatch.setenv("SEEDCODER_LAKE_ROOT", str(lake_root))
    monkeypatch.setenv("SEEDCODER_GITHUB_SECRET", "github-token")
    monkeypatch.setenv("SEEDCODER_EVAL_SETS_CLAIM", "eval-sets")
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_STANDALONE", json.dumps(
        {"conn_type": "spark", "host": "spark://127.0.0.1", "port": standalone["port"]}))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    for var in ("GITHUB_TOKEN", "SEEDCODER_S3_ENDPOINT", "SEEDCODER_S3_SECRET"):
        monkeypatch.delenv(var, raising=False)
    secrets = {"github-token": {"GITHUB_TOKEN": fake.token}}

    with DAG("standalone_test", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        operators = [stage_task(stage, module=module, secrets=("github",) if stage == "crawl" else (),
                                volumes=("eval_sets",) if stage == "decontaminate" else ())
                     for stage, module in SPARK_STAGES]
    lake = Lake.at(str(lake_root))
    for op in operators:
        assert isinstance(op, SparkSubmitOperator) and op.conf["spark.kubernetes.container.image"]
        context = {"ti": FakeTaskInstance(op.task_id, snapshot), "run_id": "manual", "dag": dag, "task": op}
        op.render_template_fields(context)
        assert op.application_args[-2:] == ["--snapshot", snapshot]
        submit = on_standalone(op, "spark_standalone", config, secrets)
        submit.execute(context)
        stats = lake.stats(snapshot, op.task_id)
        assert stats["records_out"] > 0, f"{op.task_id} committed nothing: {stats}"

    crawl, exact = lake.stats(snapshot, "crawl"), lake.stats(snapshot, "exact_dedup")
    assert exact["records_in"] == crawl["records_out"]
    assert lake.stats(snapshot, "decontaminate")["records_in"] == lake.stats(snapshot, "syntax_filter")["records_out"]
    assert fake.seen_auth and set(fake.seen_auth) == {f"Bearer {fake.token}"}, "every API call carried the token"
    repos = set(lake.read_table(snapshot, "crawl", "files", columns=["repo"]).column("repo").to_pylist())
    assert {"py/jsonkit", "py/mailer"} <= repos
    assert lake.read_table(snapshot, "crawl", "commits").num_rows > 0, "commit clones ran on the cluster"

    with urllib.request.urlopen(f"{standalone['ui']}/json/", timeout=30) as response:
        state = json.load(response)
    # Each stage names its Spark application after itself and the snapshot (crawl: after its source too).
    finished = {app["name"]: app for app in state["completedapps"]}
    expected = {f"{'crawl-github' if stage == 'crawl' else stage}-{snapshot}" for stage, _ in SPARK_STAGES}
    assert expected <= finished.keys(), sorted(finished)
    assert all(app["state"] == "FINISHED" for app in finished.values())
    assert state["aliveworkers"] == 1 and state["workers"][0]["coresused"] == 0
