"""The DAGs on the k8s profile, run by Airflow (``dag.test()``) up to the cluster: what each task would launch.

The runs are real: the crawl and the scorer are manual runs with the snapshot (the scorer version) in their conf;
quality and pretraining are asset-triggered runs consuming an Asset event whose extra names the snapshot (the
release), created as the scheduler creates them. Templates are rendered by Airflow from those runs, so a template that renders wrong (the pretraining
worker script once received the string 'None') shows here, as does a Secret that never reaches a stage.
tests/k8s/harness.py replaces only the provider operators' calls to the cluster; the publish tasks, which read
the stage's commit from the lake, are marked successful (scripts/images.sh smoke runs everything for real).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

pytestmark = [pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.37.0"
SPARK_CONNECTION = {"conn_type": "spark", "host": "k8s://https://kubernetes.default.svc", "port": 443,
                    "extra": {"deploy-mode": "cluster", "namespace": "seedcoder"}}


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> dict:
    """Run crawl and scorer (manual), quality and pretrain (asset-triggered) in a subprocess with the chart's
    environment."""
    root = tmp_path_factory.mktemp("k8s_runs")
    cfg = yaml.safe_load((REPO / "config" / "k8s.yaml").read_text())
    cfg["stages"]["pretrain"]["k8s"].update(nodes=2, gpus_per_node=4)
    config = root / "k8s.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SEEDCODER_"))}
    env.update(SEEDCODER_PROFILE="k8s", SEEDCODER_CONFIG=str(config), SEEDCODER_GITHUB_SECRET="github-token",
               SEEDCODER_ORACLE_SECRET="oracle-key", SEEDCODER_MODELS_CLAIM="models",
               SEEDCODER_ORACLE_ENDPOINT="http://seedcoder-oracle.seedcoder.svc:8000/v1",
               SEEDCODER_LAKE_ROOT="s3://corp-lake/seedcoder", AIRFLOW_CONN_SPARK_K8S=json.dumps(SPARK_CONNECTION))
    out = root / "launched.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.k8s.harness", "--home", str(root / "airflow"), "--mark-success", "publish_.*",
         "--run", 'crawl:{"snapshot": "2026-10"}',
         "--run", 'scorer:{"scorer": "v2", "snapshot": "2026-10"}',
         "--run", 'quality@seedcoder://lake/filters:{"snapshot": "2026-11"}',
         "--run", 'pretrain@seedcoder://lake/dataset:{"release": "2026-q3"}',
         "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(out.read_text())


def launches(result: dict, kind: str) -> dict[str, object]:
    return {item["task_id"]: item["spec"] for item in result["launched"] if item["kind"] == kind}


def test_the_runs_were_manual_and_asset_triggered(launched):
    assert launched["runs"] == [
        {"dag": "crawl", "state": "success", "run_type": "manual"},
        {"dag": "scorer", "state": "success", "run_type": "manual"},
        {"dag": "quality", "state": "success", "run_type": "asset_triggered"},
        {"dag": "pretrain", "state": "success", "run_type": "asset_triggered"}]


def test_the_crawl_submission_carries_the_runs_snapshot_and_the_github_token(launched):
    command = launches(launched, "spark")["crawl"]
    conf = dict(command[i + 1].split("=", 1) for i, arg in enumerate(command) if arg == "--conf")
    assert command[command.index("local:///opt/seedcoder/lake/entry.py") + 1:] == [
        "spark_jobs.crawl", "--snapshot", "2026-10"]
    assert conf["spark.kubernetes.driver.secretKeyRef.GITHUB_TOKEN"] == "github-token:GITHUB_TOKEN"
    assert conf["spark.kubernetes.driverEnv.SEEDCODER_LAKE_ROOT"] == "s3://corp-lake/seedcoder"


def test_the_quality_pods_run_their_modules_on_the_triggering_snapshot_and_version(launched):
    pods = launches(launched, "pod")
    assert set(pods) == {"oracle_label", "train_scorer", "score", "quality_filter"}
    for task_id, pod in pods.items():
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        (container,) = pod["spec"]["containers"]
        assert container["command"] == ["python", "-m", f"training.quality.{task_id}"]
        assert pod["metadata"]["labels"]["seedcoder/stage"] == task_id
    args = {task_id: pod["spec"]["containers"][0]["args"] for task_id, pod in pods.items()}
    assert args["score"][:2] == ["--snapshot", "2026-11"], "the snapshot of the Asset event's extra"
    assert args["quality_filter"] == ["--snapshot", "2026-11"]
    assert args["oracle_label"][:4] == ["--version", "v2", "--snapshot", "2026-10"], "the scorer run's conf"
    assert args["train_scorer"][:2] == ["--version", "v2"]
    oracle_env = {e["name"]: e for e in pods["oracle_label"]["spec"]["containers"][0]["env"]}
    assert oracle_env["SEEDCODER_ORACLE_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "oracle-key"
    assert oracle_env["SEEDCODER_ORACLE_ENDPOINT"]["value"] == "http://seedcoder-oracle.seedcoder.svc:8000/v1"
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pods["train_scorer"]["spec"]["volumes"]
              if "persistentVolumeClaim" in v]
    assert claims == ["models"]


def test_the_pretraining_job_gets_the_release_and_finds_its_rendezvous(launched, tmp_path):
    """Regression: the worker script shell-quoted the partition's template, which rendered to 'None'."""
    services, jobs = launches(launched, "service"), launches(launched, "job")
    (service,) = services.values()
    job = jobs["pretrain"]
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)
    order = [item["kind"] for item in launched["launched"] if item["kind"] in ("service", "job")]
    assert order == ["service", "job"], "the Service exists before the Job's pods look for pod 0"
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (2, 2), "stages.pretrain.k8s.nodes"
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert env["SEEDCODER_PARTITION_IDS"] == "2026-q3"
    fake = tmp_path / "torchrun"
    fake.write_text('#!/bin/sh\necho "MASTER_ADDR=$MASTER_ADDR"\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    name = job["metadata"]["name"]
    out = subprocess.run(["/bin/bash", "-c", container["args"][0]], capture_output=True, text=True, check=True,
                         env={**env, "PATH": f"{tmp_path}:{os.environ['PATH']}", "HOSTNAME": f"{name}-1",
                              "JOB_COMPLETION_INDEX": "1"}).stdout.splitlines()
    namespace = service["metadata"]["namespace"]
    assert out[0] == f"MASTER_ADDR={name}-0.{service['metadata']['name']}.{namespace}.svc"
    assert out[out.index("--release") + 1] == "2026-q3"
    assert "--node_rank=1" in out and "--nnodes=2" in out and "--nproc_per_node=4" in out
