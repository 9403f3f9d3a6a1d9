"""The Indexed Job of a multi-node stage as a deferrable ``KubernetesJobOperator`` (k8s profile only).

Separate from distributed_launch.py so that a DAG parsed on the local profile never imports the Kubernetes
provider. The operator is built at parse time with the stage's name only; when the task runs it reads the
stage's ``k8s`` section of the platform configuration (lake/launch.py) and shapes the Job from it, so the Job
and the headless Service of :class:`distributed_launch.HeadlessServiceOperator` always agree.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator
from distributed_launch import SCRATCH, DistributedLaunch
from kubernetes.client import models as k8s
from stage_launcher import GPU_POOL, IMAGES, NAMESPACE, PartitionKind, partition_xcom
from stage_operators import CommittedStatsMixin


class DistributedJobOperator(CommittedStatsMixin, KubernetesJobOperator):
    """Run ``module`` on ``stage``'s Indexed Job on the run's ``partition`` ids; ``ids`` (templated, default: the
    resolver task's XCom) reaches the pods as SEEDCODER_PARTITION_IDS. When every pod has finished, the task
    returns the stage's committed stats (``stage_operators.CommittedStatsMixin``)."""

    template_fields = (*KubernetesJobOperator.template_fields, "ids", "stage_args")

    def __init__(self, *, stage: str, module: str, partition: PartitionKind = "snapshot", ids: str | None = None,
                 stage_args: tuple[str, ...] = (), config_section: str | None = None, **kwargs: Any):
        kwargs.setdefault("pool", GPU_POOL)
        super().__init__(
            name=f"seedcoder-{stage.replace('_', '-')}",
            namespace=NAMESPACE,
            image=IMAGES["gpu"],
            env_vars=[k8s.V1EnvVar(name="SEEDCODER_PARTITION_IDS", value=ids or partition_xcom(partition))],
            completion_mode="Indexed",
            wait_until_job_complete=True,
            deferrable=True,
            get_logs=True,
            on_finish_action="delete_pod",
            **kwargs,
        )
        self._stage_init(stage, partition, ids)
        self.module = module
        self.stage_args = tuple(stage_args)
        self.config_section = config_section

    def launch(self) -> DistributedLaunch:
        return DistributedLaunch.from_platform_config(self.stage, self.module, stage_args=self.stage_args,
                                                      partition=self.partition, section=self.config_section)

    def shape(self, launch: DistributedLaunch) -> None:
        """Set the Job's size and its pod from ``launch``; the rendered SEEDCODER_PARTITION_IDS is kept."""
        ids = [e for e in self.env_vars if e.name == "SEEDCODER_PARTITION_IDS"]
        volumes, mounts = launch.extras.k8s_volumes()
        self.image = launch.image
        self.cmds = ["/bin/bash", "-c"]
        self.arguments = [launch.worker_script()]
        self.env_vars = launch.extras.k8s_env(launch.env()) + ids
        self.env_from = launch.extras.k8s_env_from() or []
        self.labels = launch.labels()
        self.container_resources = k8s.V1ResourceRequirements(**launch.resources())
        self.node_selector = dict(launch.node_selector)
        self.tolerations = [k8s.V1Toleration(**t) for t in launch.tolerations]
        self.volumes = [k8s.V1Volume(name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(
                            medium="Memory", size_limit=launch.shm_size)),
                        k8s.V1Volume(name="scratch", empty_dir=k8s.V1EmptyDirVolumeSource(
                            size_limit=launch.ephemeral_storage)), *volumes]
        self.volume_mounts = [k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm"),
                              k8s.V1VolumeMount(name="scratch", mount_path=SCRATCH), *mounts]
        self.ports = [k8s.V1ContainerPort(name="rendezvous", container_port=launch.rendezvous_port)]
        self.service_account_name = launch.service_account
        self.full_pod_spec = k8s.V1Pod(spec=k8s.V1PodSpec(subdomain=launch.service_name, containers=[]))
        self.completions = self.parallelism = launch.nodes
        self.backoff_limit = launch.backoff_limit

    def execute(self, context: Any):
        launch = self.launch()
        self.log.info("%s: %d node(s) x %d GPU(s), image %s", self.stage, launch.nodes, launch.gpus_per_node,
                      launch.image)
        self.shape(launch)
        super().execute(context)  # deferrable: raises TaskDeferred; the task resumes in execute_complete
        return self.committed_stats(context, push=not self.do_xcom_push)

    def execute_complete(self, context: Any, event: dict, **kwargs: Any) -> dict:
        super().execute_complete(context, event, **kwargs)  # raises when the Job failed
        return self.committed_stats(context, push=not self.do_xcom_push)
