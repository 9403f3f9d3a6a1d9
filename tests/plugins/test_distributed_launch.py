"""Multi-node launch rendering: the headless Service and the Indexed Job, validated against the Kubernetes 1.37
schema; the DAG's KubernetesJobOperator builds the same pod, shaped by the platform configuration when the task
runs; the worker script derives pod 0's address from its own hostname and starts torchrun with this node's rank
and the rendered release (run here with a recording stand-in for torchrun)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import kubernetes_validate
import pendulum
import pytest
from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from airflow.sdk import DAG
from distributed_launch import DistributedLaunch, distributed_stage_tasks, render
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

    return DistributedLaunch.from_platform_config("pretrain", "training.pretrain",
                                                  load_config(REPO / "config" / "k8s.yaml"),
                                                  partition="release", **kw)


class FakeTaskInstance:
    """What template rendering reads from a task instance: the release task's XCom."""

    def __init__(self, task_id: str):
        self.dag_id, self.task_id, self.map_index, self.try_number = "pretrain_k8s_test", task_id, -1, 1

    def xcom_pull(self, task_ids=None, **_kw):
        assert task_ids == "release", f"the template asked for task {task_ids!r}"
        return "2026-q3"


def rendered_job(op) -> dict:
    """The Job the DAG's operator would create for release 2026-q3: templates rendered, shape from the config."""
    context = {"ti": FakeTaskInstance(op.task_id), "run_id": "manual__2026-q3", "dag": op.dag, "task": op}
    op.render_template_fields(context)
    op.shape(op.launch())
    return ApiClient().sanitize_for_serialization(op.build_job_request_obj(context))


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


def pretrain_tasks():
    with DAG("pretrain_k8s_test", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        return distributed_stage_tasks("pretrain", module="training.pretrain", partition="release")


def test_the_dag_operator_builds_the_same_indexed_job(monkeypatch):
    monkeypatch.setenv("SEEDCODER_CONFIG", str(REPO / "config" / "k8s.yaml"))
    first, last = pretrain_tasks()
    assert first.task_id == "pretrain_service" and last.task_id == "pretrain"
    assert last.pool == "gpu" and last.deferrable and last.wait_until_job_complete
    job = rendered_job(last)
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    rendered = launch().job_manifest("2026-q3")["spec"]["template"]["spec"]
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 4
    assert pod["subdomain"] == rendered["subdomain"]
    container = pod["containers"][0]
    assert container["command"] + container["args"] == rendered["containers"][0]["command"]
    assert {"name": "SEEDCODER_PARTITION_IDS", "value": "2026-q3"} in container["env"]
    assert container["resources"] == rendered["containers"][0]["resources"]
    assert container["volumeMounts"] == rendered["containers"][0]["volumeMounts"]
    assert pod["tolerations"] == rendered["tolerations"] and pod["nodeSelector"] == rendered["nodeSelector"]


def test_the_job_shape_is_the_configured_one(tmp_path, monkeypatch):
    """stages.pretrain.k8s of the platform configuration shapes the Job when the task runs (not the DAG file)."""
    import yaml

    cfg = yaml.safe_load((REPO / "config" / "k8s.yaml").read_text())
    cfg["stages"]["pretrain"]["k8s"].update(nodes=2, gpus_per_node=4, cpu="48", memory="500Gi",
                                            node_selector={"pool": "h100"}, rendezvous_port=29600)
    path = tmp_path / "k8s.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("SEEDCODER_CONFIG", str(path))
    _, job_task = pretrain_tasks()
    job = rendered_job(job_task)
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (2, 2)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"] == {"cpu": "48", "memory": "500Gi", "ephemeral-storage": "500Gi",
                                                "nvidia.com/gpu": "4"}
    assert pod["nodeSelector"] == {"pool": "h100"}
    assert "--nnodes=2 --nproc_per_node=4" in container["args"][0] and "--master_port=29600" in container["args"][0]
    assert container["ports"] == [{"containerPort": 29600, "name": "rendezvous"}]


def test_the_service_operator_creates_the_service_the_job_joins(monkeypatch):
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    monkeypatch.setenv("SEEDCODER_CONFIG", str(REPO / "config" / "k8s.yaml"))
    created = []

    class Api:
        def create_namespaced_service(self, namespace, body):
            created.append((namespace, body))

    monkeypatch.setattr(KubernetesHook, "core_v1_client", property(lambda self: Api()))
    service_task, job_task = pretrain_tasks()
    assert service_task.execute({}) == "seedcoder-pretrain-workers"
    ((namespace, service),) = created
    kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)
    pod = rendered_job(job_task)["spec"]["template"]
    assert pod["spec"]["subdomain"] == service["metadata"]["name"] and namespace == "seedcoder"
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


def test_local_profile_runs_the_stage_as_one_subprocess(monkeypatch):
    monkeypatch.setenv("SEEDCODER_PROFILE", "local")
    with DAG("pretrain_local_test", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        first, last = distributed_stage_tasks("pretrain", module="training.pretrain")
    assert first is last and type(first).__name__ == "LocalStageOperator" and first.runtime == "gpu"


def run_worker_script(script: str, tmp_path: Path, env: dict[str, str]) -> list[str]:
    fake = tmp_path / "torchrun"
    fake.write_text('#!/bin/sh\necho "MASTER_ADDR=$MASTER_ADDR"\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "HOSTNAME": "job-seedcoder-pretrain-x7k2p-3",
           "JOB_COMPLETION_INDEX": "3", **env}
    out = subprocess.run(["/bin/bash", "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_the_worker_script_finds_pod_zero_and_passes_the_node_rank(tmp_path: Path):
    script = launch(stage_args=("--fresh",)).worker_script()
    lines = run_worker_script(script, tmp_path, {"SEEDCODER_PARTITION_IDS": "2026-q3"})
    assert lines[0] == "MASTER_ADDR=job-seedcoder-pretrain-x7k2p-0.seedcoder-pretrain-workers.seedcoder.svc"
    assert lines[1:] == ["--nnodes=4", "--nproc_per_node=8", "--node_rank=3",
                         "--master_addr=job-seedcoder-pretrain-x7k2p-0.seedcoder-pretrain-workers.seedcoder.svc",
                         "--master_port=29500", "-m", "training.pretrain", "--release", "2026-q3", "--fresh"]


def test_the_rendered_job_passes_the_runs_release_to_torchrun(tmp_path: Path, monkeypatch):
    """Regression: the worker script once shell-quoted the partition's Jinja template, which rendered to 'None'."""
    monkeypatch.setenv("SEEDCODER_CONFIG", str(REPO / "config" / "k8s.yaml"))
    _, job_task = pretrain_tasks()
    (container,) = rendered_job(job_task)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    lines = run_worker_script(container["args"][0], tmp_path, env)
    assert lines[lines.index("--release") + 1] == "2026-q3"


def test_the_worker_script_refuses_a_missing_release(tmp_path: Path):
    proc = subprocess.run(["/bin/bash", "-c", launch().worker_script()], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "HOSTNAME": "job-x-0", "JOB_COMPLETION_INDEX": "0"})
    assert proc.returncode != 0 and "no release id" in proc.stderr


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="nodes and gpus_per_node"):
        DistributedLaunch(stage="pretrain", module="training.pretrain", nodes=0)
