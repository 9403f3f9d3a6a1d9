"""scripts/image_smoke.py's stand-in for Kubernetes: what it runs for a rendered pod and a spark-submit command.

The smoke itself (scripts/images.sh smoke) takes the better part of an hour; this checks, in seconds, that its
translation keeps what the cluster would give the container: the command, every environment variable (Secret
references resolved), every mount, and for Spark the driver pod that Spark on Kubernetes would start.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import sys
from pathlib import Path

import pendulum
import pytest

REPO = Path(__file__).resolve().parents[2]
SPARK_CONNECTION = {"conn_type": "spark", "host": "k8s://https://kubernetes.default.svc", "port": 443,
                    "extra": {"deploy-mode": "cluster", "namespace": "seedcoder"}}


@pytest.fixture(scope="module")
def smoke():
    spec = importlib.util.spec_from_file_location("image_smoke", REPO / "scripts" / "image_smoke.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["image_smoke"] = module
    spec.loader.exec_module(module)
    return module


def test_doctests(smoke):
    assert doctest.testmod(smoke).failed == 0


@pytest.fixture
def cluster(smoke, tmp_path, monkeypatch):
    from stage_launcher import FORWARDED_ENV

    # The launcher forwards the deployment's settings from its own environment; CI exports an S3 endpoint and
    # region for its S3 server, so clear them: the expected pod environments below are this fixture's alone.
    for var in FORWARDED_ENV:
        monkeypatch.delenv(var, raising=False)
    for var, value in {"SEEDCODER_PROFILE": "k8s", "SEEDCODER_GITHUB_SECRET": "github-token",
                       "SEEDCODER_EVAL_SETS_CLAIM": "eval-sets", "SEEDCODER_MODELS_CLAIM": "models",
                       "SEEDCODER_CONFIG_MAP": "seedcoder-config", "SEEDCODER_S3_SECRET": "lake-s3",
                       "SEEDCODER_SPARK_POD_TEMPLATE": str(tmp_path / "configmap" / "spark-pod-template.yaml"),
                       "SEEDCODER_LAKE_ROOT": "s3://lake/smoke",
                       "AIRFLOW_CONN_SPARK_K8S": json.dumps(SPARK_CONNECTION)}.items():
        monkeypatch.setenv(var, value)
    for name in ("configmap", "eval-sets", "models", "lake"):
        (tmp_path / name).mkdir()
    (tmp_path / "configmap" / "spark-pod-template.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nspec:\n  volumes:\n    - name: platform-config\n      configMap:\n"
        "        name: seedcoder-config\n  containers:\n    - name: spark\n      volumeMounts:\n"
        "        - {name: platform-config, mountPath: /etc/seedcoder, readOnly: true}\n")
    return smoke.Cluster(secrets={"github-token": {"GITHUB_TOKEN": "t0k"},
                                  "lake-s3": {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key"}},
                         claims={"eval-sets": tmp_path / "eval-sets", "models": tmp_path / "models"},
                         config_maps={"seedcoder-config": tmp_path / "configmap"},
                         shared_mounts=[tmp_path / "lake"], work=tmp_path)


def captured(smoke, cluster, launched, monkeypatch):
    runs = []
    monkeypatch.setattr(smoke.ImageRunner, "execute", lambda self, item, run, suffix="": runs.append(run))
    smoke.ImageRunner(cluster, cluster.work)(launched)
    return runs


def rendered(stage: str, **kw):
    from airflow.sdk import DAG
    from stage_launcher import stage_task

    class TaskInstance:
        dag_id, task_id, map_index, try_number = "smoke_test", stage, -1, 1

        def xcom_pull(self, task_ids=None, **_kw):
            return "2026-11"

    with DAG("smoke_test", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        op = stage_task(stage, **kw)
    context = {"ti": TaskInstance(), "run_id": "manual", "dag": dag, "task": op}
    op.render_template_fields(context)
    return op, context


def test_a_spark_stage_becomes_its_driver_pod(smoke, cluster, monkeypatch):
    from tests.k8s.harness import Launched

    op, _ = rendered("decontaminate", module="spark_jobs.filters.decontaminate", volumes=("eval_sets",),
                     secrets=("github",))
    command = op._get_hook()._build_spark_submit_command(op.application)
    (run,) = captured(smoke, cluster, Launched("spark", "filters", "decontaminate", command), monkeypatch)
    assert run.image == "ghcr.io/seedcoder-platform/spark:0.1.0"
    assert run.command == ["/opt/entrypoint.sh", "driver", "--properties-file", "/opt/spark/conf/spark.properties",
                           "--class", "org.apache.spark.deploy.PythonRunner", "/opt/seedcoder/lake/entry.py",
                           "spark_jobs.filters.decontaminate", "--snapshot", "2026-11"]
    assert run.env == {"SEEDCODER_PROFILE": "k8s", "SEEDCODER_LAKE_ROOT": "s3://lake/smoke",
                       "SEEDCODER_CONFIG": "/etc/seedcoder/k8s.yaml", "GITHUB_TOKEN": "t0k",
                       "AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key", "SPARK_DRIVER_BIND_ADDRESS": "127.0.0.1"}
    mounts = {path: (host, ro) for host, path, ro in run.mounts}
    assert mounts["/etc/seedcoder"] == (cluster.work / "configmap", True), "the pod template's ConfigMap"
    assert mounts["/eval-sets"] == (cluster.work / "eval-sets", True), "the eval-sets claim"
    properties = dict(line.split("=", 1) for line in mounts["/opt/spark/conf/spark.properties"][0].read_text().split("\n")
                      if line)
    assert properties["spark.master"] == "local[2]" and properties["spark.app.name"] == "seedcoder-decontaminate"
    assert properties["spark.driver.memory"] == "2048m", "8g asked, capped at this machine's share"
    assert properties["spark.executorEnv.SEEDCODER_LAKE_ROOT"] == "s3://lake/smoke"


def test_a_pod_keeps_its_command_env_and_mounts(smoke, cluster, monkeypatch):
    from kubernetes.client import ApiClient
    from stage_launcher import PodResources

    from tests.k8s.harness import Launched

    op, context = rendered("train_scorer", module="training.quality.train_scorer", runtime="gpu",
                           volumes=("models",), resources=PodResources(gpus=1))
    monkeypatch.setattr("airflow.providers.cncf.kubernetes.hooks.kubernetes.KubernetesHook.is_in_cluster",
                        property(lambda self: False))
    pod = ApiClient().sanitize_for_serialization(op.build_pod_request_obj(context))
    (run,) = captured(smoke, cluster, Launched("pod", "quality", "train_scorer", pod), monkeypatch)
    assert run.command == ["python", "-m", "training.quality.train_scorer", "--snapshot", "2026-11"]
    assert run.env["AWS_SECRET_ACCESS_KEY"] == "key" and run.env["SEEDCODER_CONFIG"] == "/etc/seedcoder/k8s.yaml"
    mounts = {path: (host, ro) for host, path, ro in run.mounts}
    assert mounts["/models"] == (cluster.work / "models", True)
    assert mounts["/etc/seedcoder"] == (cluster.work / "configmap", True)
    assert "/dev/shm" not in mounts, "the container's own /dev/shm stands in for the memory-backed emptyDir"


def test_unknown_references_fail_loudly(smoke, cluster, monkeypatch):
    from tests.k8s.harness import Launched

    pod = {"spec": {"containers": [{"image": "x", "command": ["true"], "env": [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k"}}}]}]}}
    with pytest.raises(KeyError, match="Secret 'missing' has no key 'k'"):
        captured(smoke, cluster, Launched("pod", "d", "t", pod), monkeypatch)
