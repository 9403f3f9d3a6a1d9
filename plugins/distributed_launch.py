"""Multi-node launch of a GPU stage on Kubernetes: an Indexed Job of N pods plus a headless Service.

Each pod runs ``torchrun --nnodes N --nproc_per_node G --node_rank $JOB_COMPLETION_INDEX`` with the static
rendezvous at pod 0, for the partition ids in ``$SEEDCODER_PARTITION_IDS`` (an environment variable the task's
template fills: the worker script itself holds no template). An Indexed Job gives every pod the stable hostname
``<job name>-<index>``, and with ``subdomain`` set to the headless Service, pod 0 is resolvable as
``<job name>-0.<service>``; the pod derives that address from its own hostname, so the launch works whatever name
the Job gets (Airflow's KubernetesJobOperator adds a unique suffix). The Service publishes not-ready addresses so peers resolve pod 0
while it is still starting.

Pods ask for ``gpus_per_node`` GPUs (requests = limits), carry the GPU node selector and tolerations, mount a
memory-backed ``/dev/shm`` (NCCL and dataloader workers need more than the container default of 64 MiB) and
run in the Airflow ``gpu`` pool; an ``emptyDir`` at ``/scratch`` holds checkpoint files on their way to the lake.
The shape (nodes, GPUs, resources, nodes' labels) is the stage's ``k8s`` section of the platform configuration
(lake/launch.py), read when the task runs. :func:`render` gives the plain manifests (validated against the
Kubernetes schema in tests, usable with ``kubectl apply``); :func:`distributed_stage_tasks` gives the DAG's
operators: the local profile falls back to the stage launcher's subprocess (DeepSpeed launcher on CPU).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import BaseOperator
from stage_launcher import (
    IMAGES,
    NAMESPACE,
    PARTITION_FLAGS,
    SERVICE_ACCOUNT,
    PartitionKind,
    PodExtras,
    lake_credentials_secret,
    profile,
    stage_task,
)

RENDEZVOUS_LABEL = "seedcoder/rendezvous"
# Node-local disk for checkpoint files on their way to the lake (stages.pretrain.scratch_dir on k8s).
SCRATCH = "/scratch"


@dataclass(frozen=True)
class DistributedLaunch:
    """Everything the manifests of one multi-node stage depend on."""

    stage: str
    module: str
    nodes: int = 1
    gpus_per_node: int = 8
    cpu: str = "64"
    memory: str = "1000Gi"
    shm_size: str = "256Gi"
    ephemeral_storage: str = "500Gi"
    node_selector: dict[str, str] = field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    tolerations: tuple[dict[str, str], ...] = (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)
    rendezvous_port: int = 29_500
    backoff_limit: int = 3
    image: str = IMAGES["gpu"]
    namespace: str = NAMESPACE
    service_account: str = SERVICE_ACCOUNT
    stage_args: tuple[str, ...] = ()
    extras: PodExtras = PodExtras()
    # What the stage runs on: pretraining trains on a release (``--release NAME``).
    partition: PartitionKind = "snapshot"

    def __post_init__(self):
        if self.nodes < 1 or self.gpus_per_node < 1:
            raise ValueError(f"{self.stage}: nodes and gpus_per_node must be >= 1, got {self.nodes}, "
                             f"{self.gpus_per_node}")

    @classmethod
    def from_platform_config(cls, stage: str, module: str, cfg=None, *, section: str | None = None,
                             **kw: Any) -> DistributedLaunch:
        """From ``stages.<section>.k8s`` of the platform configuration (default: the active profile's file);
        ``section`` defaults to the stage (the RL steps share ``stages.rl.k8s``)."""
        from lake.config import load_config
        from lake.launch import k8s_launch

        return cls.from_config(stage, module, k8s_launch(cfg or load_config(), section or stage), **kw)

    @classmethod
    def from_config(cls, stage: str, module: str, k8s_cfg, **kw: Any) -> DistributedLaunch:
        """From a stage's typed ``k8s`` section (lake.launch.K8sLaunchConfig)."""
        return cls(stage=stage, module=module, nodes=k8s_cfg.nodes, gpus_per_node=k8s_cfg.gpus_per_node,
                   cpu=k8s_cfg.cpu, memory=k8s_cfg.memory, shm_size=k8s_cfg.shm_size,
                   ephemeral_storage=k8s_cfg.ephemeral_storage, node_selector=dict(k8s_cfg.node_selector),
                   tolerations=tuple(dict(t) for t in k8s_cfg.tolerations),
                   rendezvous_port=k8s_cfg.rendezvous_port, backoff_limit=k8s_cfg.backoff_limit, **kw)

    @property
    def slug(self) -> str:
        return f"seedcoder-{self.stage.replace('_', '-')}"

    @property
    def service_name(self) -> str:
        return f"{self.slug}-workers"

    @property
    def world_size(self) -> int:
        return self.nodes * self.gpus_per_node

    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/part-of": "seedcoder", "seedcoder/stage": self.stage,
                RENDEZVOUS_LABEL: self.slug}

    def worker_script(self) -> str:
        """The pod's shell command: pod 0's address from the hostname, then torchrun on the partition ids in
        ``$SEEDCODER_PARTITION_IDS``."""
        torchrun = ["torchrun", f"--nnodes={self.nodes}", f"--nproc_per_node={self.gpus_per_node}",
                    '--node_rank="${JOB_COMPLETION_INDEX}"', '--master_addr="${MASTER_ADDR}"',
                    f"--master_port={self.rendezvous_port}", "-m", self.module,
                    PARTITION_FLAGS[self.partition], '"${SEEDCODER_PARTITION_IDS}"',
                    *map(shlex.quote, self.stage_args)]
        return ("set -eu\n"
                f': "${{SEEDCODER_PARTITION_IDS:?no {self.partition} id}}"\n'
                f'MASTER_ADDR="${{HOSTNAME%-*}}-0.{self.service_name}.{self.namespace}.svc"\n'
                "export MASTER_ADDR\n"
                "exec " + " ".join(torchrun) + "\n")

    def resources(self) -> dict[str, dict[str, str]]:
        limits = {"cpu": self.cpu, "memory": self.memory, "ephemeral-storage": self.ephemeral_storage,
                  "nvidia.com/gpu": str(self.gpus_per_node)}
        return {"requests": dict(limits), "limits": limits}

    def env(self) -> dict[str, str]:
        """The deployment's settings (as every stage pod gets them) plus the scratch dir and NCCL/torch knobs."""
        return {**self.extras.env(), "SEEDCODER_SCRATCH": f"{SCRATCH}/{self.stage}",
                "NCCL_SOCKET_IFNAME": "eth0", "OMP_NUM_THREADS": "8", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1"}

    def volumes(self) -> list[dict[str, Any]]:
        extra, _ = self.extras.k8s_volumes()
        from kubernetes.client import ApiClient

        return [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": self.shm_size}},
                {"name": "scratch", "emptyDir": {"sizeLimit": self.ephemeral_storage}},
                *ApiClient().sanitize_for_serialization(extra)]

    def volume_mounts(self) -> list[dict[str, Any]]:
        from kubernetes.client import ApiClient

        _, extra = self.extras.k8s_volumes()
        return [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "scratch", "mountPath": SCRATCH},
                *ApiClient().sanitize_for_serialization(extra)]

    # -- plain manifests ------------------------------------------------------------------------------
    def service_manifest(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": self.service_name, "namespace": self.namespace, "labels": self.labels()},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                     "selector": {RENDEZVOUS_LABEL: self.slug},
                     "ports": [{"name": "rendezvous", "port": self.rendezvous_port,
                                "targetPort": self.rendezvous_port}]},
        }

    def job_manifest(self, snapshot: str, name: str | None = None) -> dict[str, Any]:
        # Pod hostnames are "<job name>-<index>" and must fit a 63-character DNS label.
        name = name or f"{self.slug}-{snapshot.lower().replace('_', '-').replace('.', '-')}"[:52].rstrip("-")
        pod = {
            "metadata": {"labels": self.labels()},
            "spec": {
                "subdomain": self.service_name,
                "restartPolicy": "Never",
                "serviceAccountName": self.service_account,
                "nodeSelector": dict(self.node_selector),
                "tolerations": [dict(t) for t in self.tolerations],
                "volumes": self.volumes(),
                "containers": [{
                    "name": "base",
                    "image": self.image,
                    "command": ["/bin/bash", "-c", self.worker_script()],
                    "env": [{"name": k, "value": v}
                            for k, v in sorted({**self.env(), "SEEDCODER_PARTITION_IDS": snapshot}.items())],
                    **({"envFrom": [{"secretRef": {"name": secret}}]} if (secret := lake_credentials_secret())
                       else {}),
                    "ports": [{"name": "rendezvous", "containerPort": self.rendezvous_port}],
                    "resources": self.resources(),
                    "volumeMounts": self.volume_mounts(),
                }],
            },
        }
        return {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": self.namespace, "labels": self.labels()},
            "spec": {"completionMode": "Indexed", "completions": self.nodes, "parallelism": self.nodes,
                     "backoffLimit": self.backoff_limit, "template": pod},
        }


def render(launch: DistributedLaunch, snapshot: str) -> list[dict[str, Any]]:
    """The Service and the Job, as ``kubectl apply`` takes them."""
    return [launch.service_manifest(), launch.job_manifest(snapshot)]


class HeadlessServiceOperator(BaseOperator):
    """Create the workers' headless Service if it is missing (idempotent: every run and retry may call it).

    The Service is shaped like the Job, from the stage's ``k8s`` configuration when the task runs.
    """

    ui_color = "#dfe8f6"

    def __init__(self, *, stage: str, module: str, kubernetes_conn_id: str = "kubernetes_default", **kwargs: Any):
        super().__init__(**kwargs)
        self.stage = stage
        self.module = module
        self.kubernetes_conn_id = kubernetes_conn_id

    def execute(self, context: Any) -> str:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
        from kubernetes.client.exceptions import ApiException

        manifest = DistributedLaunch.from_platform_config(self.stage, self.module).service_manifest()
        api = KubernetesHook(conn_id=self.kubernetes_conn_id).core_v1_client
        meta = manifest["metadata"]
        try:
            api.create_namespaced_service(namespace=meta["namespace"], body=manifest)
            self.log.info("created service %s/%s", meta["namespace"], meta["name"])
        except ApiException as err:
            if err.status != 409:
                raise
            self.log.info("service %s/%s already exists", meta["namespace"], meta["name"])
        return meta["name"]


def distributed_stage_tasks(stage: str, *, module: str, partition: PartitionKind = "snapshot",
                            stage_args: tuple[str, ...] = (), **kwargs: Any) -> tuple[BaseOperator, BaseOperator]:
    """(first, last) task of the stage on the run's ``partition`` ids: local -> one subprocess task; k8s ->
    headless Service >> Indexed Job. ``stage_args`` (templated) follow the partition flag on both profiles;
    ``config_section`` names the ``stages.<section>.k8s`` that shapes the Job (default: the stage's own)."""
    config_section = kwargs.pop("config_section", None)
    if profile() == "local":
        task = stage_task(stage, module=module, runtime="gpu", partition=partition,
                          extra_args=list(stage_args) or None, **kwargs)
        return task, task
    from distributed_job import DistributedJobOperator

    service = HeadlessServiceOperator(task_id=f"{stage}_service", stage=stage, module=module)
    job = DistributedJobOperator(task_id=stage, stage=stage, module=module, partition=partition,
                                 stage_args=stage_args, config_section=config_section, **kwargs)
    service >> job
    return service, job
