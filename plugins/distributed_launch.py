"""Multi-node launch of a GPU stage on Kubernetes: an Indexed Job of N pods plus a headless Service.

Each pod runs ``torchrun --nnodes N --nproc_per_node G --node_rank $JOB_COMPLETION_INDEX`` with the static
rendezvous at pod 0. An Indexed Job gives every pod the stable hostname ``<job name>-<index>``, and with
``subdomain`` set to the headless Service, pod 0 is resolvable as ``<job name>-0.<service>``; the pod derives
that address from its own hostname, so the launch works whatever name the Job gets (Airflow's
KubernetesJobOperator adds a unique suffix). The Service publishes not-ready addresses so peers resolve pod 0
while it is still starting.

Pods ask for ``gpus_per_node`` GPUs (requests = limits), carry the GPU node selector and tolerations, mount a
memory-backed ``/dev/shm`` (NCCL and dataloader workers need more than the container default of 64 MiB) and
run in the Airflow ``gpu`` pool; an ``emptyDir`` at ``/scratch`` holds checkpoint files on their way to the lake. :func:`render` gives the plain manifests (validated against the Kubernetes
schema in tests, usable with ``kubectl apply``); :func:`distributed_stage_tasks` gives the DAG's operators:
the local profile falls back to the stage launcher's subprocess (DeepSpeed launcher on CPU).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import BaseOperator
from stage_launcher import (
    GPU_POOL,
    IMAGES,
    NAMESPACE,
    PARTITION_FLAGS,
    SERVICE_ACCOUNT,
    PartitionKind,
    lake_credentials_secret,
    lake_env,
    partition_xcom,
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
    # What the stage runs on: pretraining trains on a release (``--release NAME``).
    partition: PartitionKind = "snapshot"

    def __post_init__(self):
        if self.nodes < 1 or self.gpus_per_node < 1:
            raise ValueError(f"{self.stage}: nodes and gpus_per_node must be >= 1, got {self.nodes}, "
                             f"{self.gpus_per_node}")

    @classmethod
    def from_config(cls, stage: str, module: str, k8s_cfg, **kw: Any) -> DistributedLaunch:
        """From a stage's typed ``k8s`` section (e.g. ``PretrainConfig.k8s``)."""
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

    def worker_script(self, snapshot: str) -> str:
        """The pod's shell command: pod 0's address from the hostname, then torchrun on partition ``snapshot``."""
        torchrun = ["torchrun", f"--nnodes={self.nodes}", f"--nproc_per_node={self.gpus_per_node}",
                    '--node_rank="${JOB_COMPLETION_INDEX}"', '--master_addr="${MASTER_ADDR}"',
                    f"--master_port={self.rendezvous_port}", "-m", self.module,
                    PARTITION_FLAGS[self.partition], shlex.quote(snapshot), *map(shlex.quote, self.stage_args)]
        return ("set -eu\n"
                f'MASTER_ADDR="${{HOSTNAME%-*}}-0.{self.service_name}.{self.namespace}.svc"\n'
                "export MASTER_ADDR\n"
                "exec " + " ".join(torchrun) + "\n")

    def resources(self) -> dict[str, dict[str, str]]:
        limits = {"cpu": self.cpu, "memory": self.memory, "ephemeral-storage": self.ephemeral_storage,
                  "nvidia.com/gpu": str(self.gpus_per_node)}
        return {"requests": dict(limits), "limits": limits}

    def env(self) -> dict[str, str]:
        """The lake settings of the deployment (as every stage pod gets them) plus the NCCL/torch knobs."""
        return {"SEEDCODER_PROFILE": "k8s", **lake_env(), "SEEDCODER_SCRATCH": f"{SCRATCH}/{self.stage}",
                "NCCL_SOCKET_IFNAME": "eth0", "OMP_NUM_THREADS": "8", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1"}

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
                "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": self.shm_size}},
                            {"name": "scratch", "emptyDir": {"sizeLimit": self.ephemeral_storage}}],
                "containers": [{
                    "name": "base",
                    "image": self.image,
                    "command": ["/bin/bash", "-c", self.worker_script(snapshot)],
                    "env": [{"name": k, "value": v} for k, v in sorted(self.env().items())],
                    **({"envFrom": [{"secretRef": {"name": secret}}]} if (secret := lake_credentials_secret())
                       else {}),
                    "ports": [{"name": "rendezvous", "containerPort": self.rendezvous_port}],
                    "resources": self.resources(),
                    "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"},
                                     {"name": "scratch", "mountPath": SCRATCH}],
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
    """Create the workers' headless Service if it is missing (idempotent: every run and retry may call it)."""

    ui_color = "#dfe8f6"

    def __init__(self, *, manifest: dict[str, Any], kubernetes_conn_id: str = "kubernetes_default", **kwargs: Any):
        super().__init__(**kwargs)
        self.manifest = manifest
        self.kubernetes_conn_id = kubernetes_conn_id

    def execute(self, context: Any) -> str:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
        from kubernetes.client.exceptions import ApiException

        api = KubernetesHook(conn_id=self.kubernetes_conn_id).core_v1_client
        meta = self.manifest["metadata"]
        try:
            api.create_namespaced_service(namespace=meta["namespace"], body=self.manifest)
            self.log.info("created service %s/%s", meta["namespace"], meta["name"])
        except ApiException as err:
            if err.status != 409:
                raise
            self.log.info("service %s/%s already exists", meta["namespace"], meta["name"])
        return meta["name"]


def job_operator(launch: DistributedLaunch, snapshot: str | None = None, **kwargs: Any):
    """A deferrable ``KubernetesJobOperator`` running the Indexed Job of :meth:`DistributedLaunch.job_manifest`
    (on the run's partition ids, from the resolver task's XCom, unless ``snapshot`` names them)."""
    from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator
    from kubernetes.client import models as k8s

    manifest = launch.job_manifest(snapshot or partition_xcom(launch.partition))
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    kwargs.setdefault("pool", GPU_POOL)
    return KubernetesJobOperator(
        task_id=kwargs.pop("task_id", launch.stage),
        name=launch.slug,
        namespace=launch.namespace,
        image=launch.image,
        cmds=container["command"][:2],
        arguments=container["command"][2:],
        env_vars=launch.env(),
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=secret))]
        if (secret := lake_credentials_secret()) else None,
        labels=launch.labels(),
        container_resources=k8s.V1ResourceRequirements(**launch.resources()),
        node_selector=dict(launch.node_selector),
        tolerations=[k8s.V1Toleration(**t) for t in launch.tolerations],
        volumes=[k8s.V1Volume(name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory",
                                                                                size_limit=launch.shm_size)),
                 k8s.V1Volume(name="scratch",
                              empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=launch.ephemeral_storage))],
        volume_mounts=[k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm"),
                       k8s.V1VolumeMount(name="scratch", mount_path=SCRATCH)],
        ports=[k8s.V1ContainerPort(name="rendezvous", container_port=launch.rendezvous_port)],
        service_account_name=launch.service_account,
        full_pod_spec=k8s.V1Pod(spec=k8s.V1PodSpec(subdomain=launch.service_name, containers=[])),
        completion_mode="Indexed",
        completions=launch.nodes,
        parallelism=launch.nodes,
        backoff_limit=launch.backoff_limit,
        wait_until_job_complete=True,
        deferrable=True,
        get_logs=True,
        on_finish_action="delete_pod",
        **kwargs,
    )


def distributed_stage_tasks(stage: str, *, module: str, launch: DistributedLaunch | None = None,
                            **kwargs: Any) -> tuple[BaseOperator, BaseOperator]:
    """(first, last) task of the stage: local -> one subprocess task; k8s -> headless Service >> Indexed Job."""
    if profile() == "local" or launch is None:
        task = stage_task(stage, module=module, runtime="gpu", partition=launch.partition if launch else "snapshot",
                          **kwargs)
        return task, task
    service = HeadlessServiceOperator(task_id=f"{stage}_service", manifest=launch.service_manifest())
    job = job_operator(launch, task_id=stage, **kwargs)
    service >> job
    return service, job
