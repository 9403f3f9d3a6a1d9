"""The multi-node launch of a GPU stage on the k8s profile: the ``k8s`` section of a stage's configuration.

plugins/distributed_launch.py shapes the stage's Indexed Job and headless Service from it when the task runs (so
a configuration change needs no DAG change); the stage itself never reads it. It lives here, with the other
contracts both sides share, because the Airflow image carries lake/ but not the stage packages.
"""

from __future__ import annotations

from pydantic import Field

from lake.config import PlatformConfig, StrictModel


class K8sLaunchConfig(StrictModel):
    """``stages.<stage>.k8s``: nodes, GPUs and the pod shape of a multi-node stage."""

    # Pods of the Indexed Job (torchrun nodes), and GPUs (ranks) per pod.
    nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(8, ge=1)
    # Requests (= limits) of each pod.
    cpu: str = "64"
    memory: str = "1000Gi"
    # The memory-backed /dev/shm (NCCL, dataloader workers) and the node-local scratch emptyDir.
    shm_size: str = "256Gi"
    ephemeral_storage: str = "500Gi"
    node_selector: dict[str, str] = {"nvidia.com/gpu.present": "true"}
    tolerations: list[dict[str, str]] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    # torchrun's static rendezvous: rank-0 node's pod, reached through the headless Service.
    rendezvous_port: int = Field(29_500, ge=1024, le=65_535)
    # Pod failures the Job retries before it fails (each retry resumes from the newest checkpoint).
    backoff_limit: int = Field(3, ge=0)


def k8s_launch(cfg: PlatformConfig, stage: str) -> K8sLaunchConfig:
    """The validated ``stages.<stage>.k8s`` of ``cfg`` (defaults where it is silent).

    >>> from lake.config import PlatformConfig
    >>> k8s_launch(PlatformConfig(profile="k8s", stages={"pretrain": {"k8s": {"nodes": 2}}}), "pretrain").nodes
    2
    """
    from pydantic import ValidationError

    from lake.config import ConfigError

    try:
        return K8sLaunchConfig.model_validate((cfg.stages.get(stage) or {}).get("k8s") or {})
    except ValidationError as err:
        raise ConfigError(f"invalid configuration in {cfg.source_path or 'config'}: stages.{stage}.k8s:\n{err}") from None
