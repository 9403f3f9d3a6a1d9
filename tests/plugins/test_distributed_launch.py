"""Multi-node launch rendering: the headless Service and the Indexed Job, validated against the Kubernetes 1.37
schema; the DAG's KubernetesJobOperator builds the same pod; the worker script derives pod 0's address from its
own hostname and starts torchrun with this node's rank (run here with a recording stand-in for torchrun)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import kubernetes_validate
import pendulum
import pytest
from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from airflow.sdk import DAG
from distributed_launch import DistributedLaunch, distributed_stage_tasks, job_operator, render
from kubernetes.client import ApiClient

KUBERNETES_VERSION = "1.37.0"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def k8s_profile(monkeypatch):
    monkeypatch.setenv("SEEDCODER_PROFILE", "k8s")
    monkeypatch.setenv("SEEDCODER_S3_SECRET", "lake-s3")
    monkeypatch.setenv("SEEDCODER_LAKE_ROOT", "s3://lake/prod")
    # build_job_request_obj labels the pod with whether Airflow runs in a cluster; there is none here.
    monkeypatch.setattr(KubernetesHook, "is_in_cluster", property(lambda self: False))


def launch(**kw) -> DistributedLaunch:
    from lake.config import load_config
    from training.pretrain.config import PretrainConfig

    cfg = load_config(REPO / "config" / "k8s.yaml").stage("pretrain", PretrainConfig)
    return DistributedLaunch.from_config("pretrain", "training.pretrain", cfg.k8s, partition="release", **kw)


def test_rendered_manifests_validate_and_carry_the_gpu_settings():
    service, job = render(launch(), "2026-10")
    for manifest in (service, job):
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 4)
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Gi"}} in pod["volumes"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert {"name": "scratch", "mountPath": "/scratch"} in container["volumeMounts"]
    assert {"name": "SEEDCODER_SCRATCH", "value": "/scratch/pretrain"} in container["env"]
    assert container["envFrom"] == [{"secretRef": {"name": "lake-s3"}}]
    assert {"name": "SEEDCODER_LAKE_ROOT", "value": "s3://lake/prod"} in container["env"]
    assert len(job["metadata"]["name"]) + len("-99") <= 63


def test_a_long_snapshot_still_gives_valid_pod_hostnames():
    job = launch().job_manifest("A.very_long_snapshot-name-that-goes-on-and-on-and-on")
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    assert len(job["metadata"]["name"]) <= 52 and not job["metadata"]["name"].endswith("-")


def test_the_dag_operator_builds_the_same_indexed_job():
    with DAG("pretrain_k8s_test", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        first, last = distributed_stage_tasks("pretrain", module="training.pretrain", launch=launch())
    assert first.task_id == "pretrain_service" and last.task_id == "pretrain"
    assert last.pool == "gpu" and last.deferrable and last.wait_until_job_complete
    op = job_operator(launch(), snapshot="2026-10", task_id="pretrain")
    job = ApiClient().sanitize_for_serialization(op.build_job_request_obj(context=None))
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    rendered = launch().job_manifest("2026-10")["spec"]["template"]["spec"]
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 4
    assert pod["subdomain"] == rendered["subdomain"]
    container = pod["containers"][0]
    assert container["command"] + container["args"] == rendered["containers"][0]["command"]
    assert container["resources"] == rendered["containers"][0]["resources"]
    assert container["volumeMounts"] == rendered["containers"][0]["volumeMounts"]
    assert pod["tolerations"] == rendered["tolerations"] and pod["nodeSelector"] == rendered["nodeSelector"]


def test_local_profile_runs_the_stage_as_one_subprocess(monkeypatch):
    monkeypatch.setenv("SEEDCODER_PROFILE", "local")
    with DAG("pretrain_local_test", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        first, last = distributed_stage_tasks("pretrain", module="training.pretrain", launch=launch())
    assert first is last and type(first).__name__ == "LocalStageOperator" and first.runtime == "gpu"


def test_the_worker_script_finds_pod_zero_and_passes_the_node_rank(tmp_path: Path):
    fake = tmp_path / "torchrun"
    fake.write_text('#!/bin/sh\necho "MASTER_ADDR=$MASTER_ADDR"\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    script = launch(stage_args=("--fresh",)).worker_script("2026-q3")
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "HOSTNAME": "job-seedcoder-pretrain-x7k2p-3",
           "JOB_COMPLETION_INDEX": "3"}
    out = subprocess.run(["/bin/bash", "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == "MASTER_ADDR=job-seedcoder-pretrain-x7k2p-0.seedcoder-pretrain-workers.seedcoder.svc"
    assert lines[1:] == ["--nnodes=4", "--nproc_per_node=8", "--node_rank=3",
                         "--master_addr=job-seedcoder-pretrain-x7k2p-0.seedcoder-pretrain-workers.seedcoder.svc",
                         "--master_port=29500", "-m", "training.pretrain", "--release", "2026-q3", "--fresh"]


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="nodes and gpus_per_node"):
        DistributedLaunch(stage="pretrain", module="training.pretrain", nodes=0)
