"""One factory that turns a pipeline stage into the Airflow operator the deployment profile asks for.

- ``local`` (default): :class:`LocalStageOperator` runs ``python -m <module> --snapshot S`` as a subprocess in
  the stage's own virtual environment (.venv for Spark stages, .venv-gpu for GPU stages) and streams its log; when
  the main command started a warm Spark driver for its chain (``$SEEDCODER_WARM_SPARK``), Spark and plain-Python
  stages run in that driver instead (spark_jobs/warm_driver.py), the same module with the same arguments.
- ``k8s``: Spark stages become a ``SparkSubmitOperator`` (Spark on Kubernetes), GPU stages a deferrable
  ``KubernetesPodOperator`` with GPU limits, node selector, tolerations and a GPU pool. Every stage gets the
  deployment's settings (lake, services), the platform configuration the chart mounts, and only the Secrets
  and volume claims it declares (``secrets=``, ``volumes=``), all named by environment variables the chart sets.

The profile comes from ``$SEEDCODER_PROFILE`` (an environment read, no I/O), so the same DAG file serves both.
Every stage task reads its partition from the DAG's resolver task (XCom): ``snapshot`` for the data DAGs, which
resolves it from the manual-run param, the triggering Asset events, or the scheduled data interval; ``release``
for the model DAGs (dataset build, pretraining), from the param or the events. A run triggered by several Asset
events processes every partition they name, in order (the stage CLI takes a comma-separated list).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from airflow.sdk import Asset, BaseOperator, Param, task

REPO_ROOT = Path(__file__).resolve().parent.parent
Runtime = Literal["spark", "gpu", "python"]
PartitionKind = Literal["snapshot", "release", "scorer"]
# The stage CLI's flag per partition kind, as lake.cli.FLAGS has them (repeated: the DAG files must not import lake).
PARTITION_FLAGS = {"snapshot": "--snapshot", "release": "--release", "scorer": "--version"}
# The id form of snapshots, releases and scorer versions, as lake.stage.SNAPSHOT_RE checks it.
SNAPSHOT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def partition_xcom(kind: PartitionKind) -> str:
    """The template of the run's partition ids (comma-separated), as the resolver task ``kind`` returned them."""
    return "{{ ti.xcom_pull(task_ids='" + kind + "') }}"



def snapshot_params(when_empty: str) -> dict[str, Param]:
    """The ``snapshot`` param of every pipeline DAG (the manual-run form field); ``when_empty`` says the fallback."""
    return {"snapshot": Param(None, type=["null", "string"], pattern=SNAPSHOT_PATTERN,
                              description=f"Snapshot id for a manual run (e.g. 2026-10); empty: {when_empty}.")}


def release_params(when_empty: str) -> dict[str, Param]:
    """The ``release`` param of the model DAGs (dataset build, pretraining)."""
    return {"release": Param(None, type=["null", "string"], pattern=SNAPSHOT_PATTERN,
                             description=f"Release name for a manual run (e.g. 2026-q3); empty: {when_empty}.")}


def profile() -> str:
    value = os.environ.get("SEEDCODER_PROFILE", "local")
    if value not in ("local", "k8s"):
        raise ValueError(f"SEEDCODER_PROFILE must be 'local' or 'k8s', got {value!r}")
    return value


@dataclass(frozen=True)
class PodResources:
    """What a stage asks of the cluster on the k8s profile."""

    cpu: str = "2"
    memory: str = "8Gi"
    gpus: int = 0
    ephemeral_storage: str = "20Gi"
    shm_size: str | None = None  # a memory-backed /dev/shm (torch dataloaders, NCCL)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, str], ...] = ()

    def gpu_defaults(self) -> PodResources:
        if not self.gpus:
            return self
        selector = self.node_selector or {"nvidia.com/gpu.present": "true"}
        tolerations = self.tolerations or ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)
        return PodResources(self.cpu, self.memory, self.gpus, self.ephemeral_storage, self.shm_size or "16Gi",
                            selector, tolerations)


# Images and cluster names of the k8s profile (environment, so the DAG file does no I/O at parse time).
IMAGES = {
    "spark": os.environ.get("SEEDCODER_SPARK_IMAGE", "ghcr.io/seedcoder-platform/spark:0.1.0"),
    "gpu": os.environ.get("SEEDCODER_GPU_IMAGE", "ghcr.io/seedcoder-platform/gpu:0.1.0"),
    "python": os.environ.get("SEEDCODER_SPARK_IMAGE", "ghcr.io/seedcoder-platform/spark:0.1.0"),
}
NAMESPACE = os.environ.get("SEEDCODER_NAMESPACE", "seedcoder")
GPU_POOL = os.environ.get("SEEDCODER_GPU_POOL", "gpu")
SERVICE_ACCOUNT = os.environ.get("SEEDCODER_SERVICE_ACCOUNT", "seedcoder-stage")
# The spark-submit application of every Spark stage: lake/entry.py where the Spark image puts the code.
SPARK_APPLICATION = "local:///opt/seedcoder/lake/entry.py"
# Settings of the deployment the launcher passes on from its own environment (the chart sets them on Airflow's
# pods), so a stage pod or Spark job reads and writes the lake, and calls the services, the deployment configured.
FORWARDED_ENV = ("SEEDCODER_LAKE_ROOT", "SEEDCODER_S3_ENDPOINT", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "SEEDCODER_ORACLE_ENDPOINT", "SEEDCODER_ORACLE_MODEL", "SEEDCODER_SANDBOX_URL")
S3_CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
# Where stage containers find the platform configuration: the chart's ConfigMap (named by SEEDCODER_CONFIG_MAP)
# mounted here, and for Spark pods a pod template (SEEDCODER_SPARK_POD_TEMPLATE, a file of that ConfigMap on
# Airflow's pods) that mounts it. Without them a stage reads the config/k8s.yaml baked into its image.
CONFIG_DIR = "/etc/seedcoder"
CONFIG_FILE = f"{CONFIG_DIR}/k8s.yaml"


@dataclass(frozen=True)
class StageSecret:
    """A Secret some stages read: ``name_env`` is the variable naming it on Airflow's pods (the chart sets it),
    and each of ``keys`` becomes the stage's environment variable of the same name."""

    name_env: str
    keys: tuple[str, ...]

    def name(self) -> str | None:
        return os.environ.get(self.name_env) or None


@dataclass(frozen=True)
class SharedVolume:
    """A read-only volume claim some stages mount: ``claim_env`` names the claim on Airflow's pods (the chart sets
    it); config/k8s.yaml names files under ``mount_path``."""

    volume: str
    claim_env: str
    mount_path: str

    def claim(self) -> str | None:
        return os.environ.get(self.claim_env) or None


SECRETS = {
    # The crawl's GitHub token (spark_jobs.crawl.github reads GITHUB_TOKEN; only the driver calls the API).
    "github": StageSecret("SEEDCODER_GITHUB_SECRET", ("GITHUB_TOKEN",)),
    # The oracle endpoint's API key (stages.oracle_label.api_key_env of config/k8s.yaml).
    "oracle": StageSecret("SEEDCODER_ORACLE_SECRET", ("SEEDCODER_ORACLE_API_KEY",)),
}
VOLUMES = {
    # Base checkpoints (the scorer's 1.3B base, the oracle's weights): stages.train_scorer.base_model.
    "models": SharedVolume("models", "SEEDCODER_MODELS_CLAIM", "/models"),
    # Evaluation sets to decontaminate against: stages.decontaminate.eval_sets.files.
    "eval_sets": SharedVolume("eval-sets", "SEEDCODER_EVAL_SETS_CLAIM", "/eval-sets"),
}


def deployment_env() -> dict[str, str]:
    return {key: os.environ[key] for key in FORWARDED_ENV if os.environ.get(key)}


def lake_credentials_secret() -> str | None:
    """The Secret with the lake's S3 keys (``SEEDCODER_S3_SECRET``); None: the pods' own identity (IRSA)."""
    return os.environ.get("SEEDCODER_S3_SECRET") or None


def config_map() -> str | None:
    """The ConfigMap holding the platform configuration (``SEEDCODER_CONFIG_MAP``), mounted at CONFIG_DIR."""
    return os.environ.get("SEEDCODER_CONFIG_MAP") or None


def _known(kind: str, names: tuple[str, ...], table: dict) -> tuple[str, ...]:
    unknown = sorted(set(names) - table.keys())
    if unknown:
        raise ValueError(f"unknown {kind} {unknown}: the launcher knows {sorted(table)}")
    return tuple(names)


@dataclass(frozen=True)
class PodExtras:
    """What the k8s profile adds to a stage's container besides its command: environment, Secrets, volumes."""

    secrets: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()

    def __post_init__(self):
        _known("secrets", self.secrets, SECRETS)
        _known("volumes", self.volumes, VOLUMES)

    def env(self) -> dict[str, str]:
        env = {"SEEDCODER_PROFILE": "k8s", **deployment_env()}
        if config_map():
            env["SEEDCODER_CONFIG"] = CONFIG_FILE
        return env

    def secret_refs(self) -> dict[str, tuple[str, str]]:
        """Environment variable -> (Secret, key) of the declared secrets that the deployment configured."""
        refs = {}
        for secret in (SECRETS[name] for name in self.secrets):
            if secret.name():
                refs.update({key: (secret.name(), key) for key in secret.keys})
        return refs

    def claims(self) -> list[tuple[SharedVolume, str]]:
        return [(VOLUMES[name], VOLUMES[name].claim()) for name in self.volumes if VOLUMES[name].claim()]

    # -- as Kubernetes client objects (KubernetesPodOperator, KubernetesJobOperator) ------------------------
    def k8s_env(self, extra: dict[str, str] | None = None) -> list:
        from kubernetes.client import models as k8s

        env = [k8s.V1EnvVar(name=k, value=v) for k, v in {**self.env(), **(extra or {})}.items()]
        env += [k8s.V1EnvVar(name=var, value_from=k8s.V1EnvVarSource(
            secret_key_ref=k8s.V1SecretKeySelector(name=secret, key=key))) for var, (secret, key)
            in self.secret_refs().items()]
        return env

    def k8s_env_from(self) -> list | None:
        from kubernetes.client import models as k8s

        secret = lake_credentials_secret()
        return [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=secret))] if secret else None

    def k8s_volumes(self) -> tuple[list, list]:
        from kubernetes.client import models as k8s

        volumes, mounts = [], []
        if name := config_map():
            volumes.append(k8s.V1Volume(name="platform-config", config_map=k8s.V1ConfigMapVolumeSource(name=name)))
            mounts.append(k8s.V1VolumeMount(name="platform-config", mount_path=CONFIG_DIR, read_only=True))
        for volume, claim in self.claims():
            volumes.append(k8s.V1Volume(name=volume.volume, persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                claim_name=claim, read_only=True)))
            mounts.append(k8s.V1VolumeMount(name=volume.volume, mount_path=volume.mount_path, read_only=True))
        return volumes, mounts

    # -- as spark-submit configuration (Spark on Kubernetes) ------------------------------------------------
    def spark_conf(self) -> dict[str, str]:
        conf = {}
        for key, value in self.env().items():
            conf[f"spark.kubernetes.driverEnv.{key}"] = conf[f"spark.executorEnv.{key}"] = value
        if os.environ.get("SEEDCODER_S3_ENDPOINT"):
            conf["spark.hadoop.fs.s3a.endpoint"] = os.environ["SEEDCODER_S3_ENDPOINT"]
        if secret := lake_credentials_secret():
            for key in S3_CREDENTIAL_KEYS:
                conf[f"spark.kubernetes.driver.secretKeyRef.{key}"] = f"{secret}:{key}"
                conf[f"spark.kubernetes.executor.secretKeyRef.{key}"] = f"{secret}:{key}"
        # Declared secrets reach the driver only: the stages call their services from the driver.
        for var, (secret, key) in self.secret_refs().items():
            conf[f"spark.kubernetes.driver.secretKeyRef.{var}"] = f"{secret}:{key}"
        if template := os.environ.get("SEEDCODER_SPARK_POD_TEMPLATE"):
            conf["spark.kubernetes.driver.podTemplateFile"] = template
            conf["spark.kubernetes.executor.podTemplateFile"] = template
        for volume, claim in self.claims():
            for role in ("driver", "executor"):
                prefix = f"spark.kubernetes.{role}.volumes.persistentVolumeClaim.{volume.volume}"
                conf[f"{prefix}.mount.path"] = volume.mount_path
                conf[f"{prefix}.mount.readOnly"] = "true"
                conf[f"{prefix}.options.claimName"] = claim
        return conf


def stage_process_env(python: str) -> dict[str, str]:
    """The environment of a local stage process, and of the warm Spark driver that runs stages in its place
    (scripts/pipeline.py): this repository importable, ``python`` (the runtime's environment) for Spark's driver and
    Python workers, and its ``bin/`` first on PATH (spark-submit, the stage's console scripts)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = python
    env["PATH"] = os.pathsep.join([str(Path(python).parent), env.get("PATH", "")])
    return env


class LocalStageOperator(BaseOperator):
    """Run a stage module as a subprocess in its runtime's virtual environment (local profile)."""

    template_fields = ("ids", "extra_args")
    ui_color = "#e8f4ea"

    def __init__(self, *, stage: str, module: str, runtime: Runtime = "spark", partition: PartitionKind = "snapshot",
                 ids: str | None = None, extra_args: list[str] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.stage = stage
        self.module = module
        self.runtime = runtime
        self.partition = partition
        # The partition ids to process, comma-separated (default: what the run's resolver task returned).
        self.ids = ids or partition_xcom(partition)
        self.extra_args = list(extra_args or [])

    def python(self) -> str:
        from lake.config import load_config

        cfg = load_config()
        rel = cfg.launcher.gpu_python if self.runtime == "gpu" else cfg.launcher.spark_python
        path = Path(rel) if Path(rel).is_absolute() else REPO_ROOT / rel
        if not path.exists():
            raise FileNotFoundError(f"{self.runtime} environment {path} is missing: run scripts/bootstrap.sh")
        return str(path)

    def execute(self, context: Any) -> dict:
        if not self.ids or self.ids == "None":
            raise ValueError(f"stage {self.stage}: no {self.partition} id (is the '{self.partition}' task upstream?)")
        argv = [PARTITION_FLAGS[self.partition], self.ids, *self.extra_args]
        tail: deque[str] = deque(maxlen=40)
        status, where = self._run_warm(argv, tail), f"{self.module}, warm Spark driver"
        if status is None:
            status, where = self._run_process(argv, tail), self.module
        if status != 0:
            raise RuntimeError(f"stage {self.stage} ({where}) exited with {status}; last lines:\n" + "\n".join(tail))
        return committed_summary(self.ids, self.stage, self.partition)

    def _relay(self, line: str, tail: deque[str]) -> None:
        """One line of the stage's output into the task log, and the tail a failure quotes."""
        tail.append(line)
        self.log.info("%s", line)

    def _run_process(self, argv: list[str], tail: deque[str]) -> int:
        """Run the stage as ``python -m`` in its runtime's environment; returns its exit status."""
        python = self.python()
        cmd = [python, "-m", self.module, *argv]
        self.log.info("running %s", " ".join(cmd))
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=stage_process_env(python), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            self._relay(line.rstrip("\n"), tail)
        return proc.wait()

    def _run_warm(self, argv: list[str], tail: deque[str]) -> int | None:
        """Run the stage in the chain's warm Spark driver (spark_jobs/warm_driver.py; its client, lake/warm_spark.py)
        when the main command started one; returns its exit status, or None when there is no driver to use (the
        caller then starts the stage's own process)."""
        from lake import warm_spark

        socket_path = os.environ.get(warm_spark.ENV)
        if not socket_path or self.runtime not in ("spark", "python"):
            return None
        if any(arg.startswith("spark.") for arg in argv):  # a Spark setting of its own: a session of its own
            return None
        answers = warm_spark.request(socket_path, {"op": "run", "module": self.module, "argv": argv})
        try:
            first = next(answers)  # connects: no driver listening is an OSError here
        except (OSError, StopIteration) as err:
            self.log.warning("warm Spark driver %s not reachable (%s): running the stage in its own process",
                             socket_path, err)
            return None
        self.log.info("running %s %s in the warm Spark driver %s", self.module, " ".join(argv), socket_path)
        status = None
        for answer in itertools.chain((first,), answers):
            if "out" in answer:
                self._relay(answer["out"], tail)
            if "exit" in answer:
                status = int(answer["exit"])
        return status


def committed_summary(ids: str, stage: str, kind: PartitionKind = "snapshot") -> dict:
    """The committed stage's stats (small JSON for XCom and the UI); for several ids, the last one's plus ``runs``."""
    from lake.config import load_config
    from lake.stage import Partition

    lake = load_config().open_lake()
    runs = []
    for name in ids.split(","):
        info = lake.require(Partition(kind, name), stage)
        stats = info.stats
        run = {"stage": stage, kind: name, "attempt": info.attempt,
               "uri": lake.storage.uri(info.prefix), "records_in": stats["records_in"],
               "records_out": stats["records_out"], "drop_reasons": stats["drop_reasons"],
               "seconds": stats["seconds"]}
        # A stage may name a few headline numbers for XCom and the Asset event (metrics.xcom, small JSON).
        if (stats.get("metrics") or {}).get("xcom"):
            run["results"] = stats["metrics"]["xcom"]
        runs.append(run)
    return {**runs[-1], "runs": runs} if len(runs) > 1 else runs[0]


def stage_task(stage: str, *, module: str, runtime: Runtime = "spark", resources: PodResources | None = None,
               extra_args: list[str] | None = None, secrets: tuple[str, ...] = (), volumes: tuple[str, ...] = (),
               task_id: str | None = None, partition: PartitionKind = "snapshot", **op_kwargs: Any) -> BaseOperator:
    """The operator running ``python -m module`` for ``stage`` under the active profile, on the run's
    ``partition`` ids.

    ``secrets`` (keys of :data:`SECRETS`) and ``volumes`` (keys of :data:`VOLUMES`) are what the stage needs on
    the k8s profile beyond the lake; the local profile reads the same settings from the environment and disk.
    """
    task_id = task_id or stage
    extras = PodExtras(secrets=tuple(secrets), volumes=tuple(volumes))
    args = [PARTITION_FLAGS[partition], partition_xcom(partition), *(extra_args or [])]
    if profile() == "local":
        return LocalStageOperator(task_id=task_id, stage=stage, module=module, runtime=runtime, partition=partition,
                                  extra_args=extra_args, **op_kwargs)
    resources = (resources or PodResources()).gpu_defaults()
    if runtime == "spark":
        return spark_submit_operator(task_id, stage, module, args, resources, extras, partition=partition,
                                     **op_kwargs)
    return pod_operator(task_id, stage, module, args, resources, runtime, extras, partition=partition, **op_kwargs)


def spark_submit_operator(task_id: str, stage: str, module: str, args: list[str], res: PodResources,
                          extras: PodExtras, **kw: Any):
    from stage_operators import StageSparkSubmitOperator

    conf = {
        "spark.kubernetes.namespace": NAMESPACE,
        "spark.kubernetes.container.image": IMAGES["spark"],
        "spark.kubernetes.authenticate.driver.serviceAccountName": SERVICE_ACCOUNT,
        "spark.kubernetes.executor.request.cores": res.cpu,
        "spark.dynamicAllocation.enabled": "true",
        "spark.dynamicAllocation.shuffleTracking.enabled": "true",
        "spark.dynamicAllocation.maxExecutors": os.environ.get("SEEDCODER_SPARK_MAX_EXECUTORS", "50"),
    }
    for key, value in res.node_selector.items():
        conf[f"spark.kubernetes.node.selector.{key}"] = value
    conf.update(extras.spark_conf())
    return StageSparkSubmitOperator(
        stage=stage,
        task_id=task_id,
        conn_id=os.environ.get("SEEDCODER_SPARK_CONN_ID", "spark_k8s"),
        application=SPARK_APPLICATION,
        application_args=[module, *args],
        name=f"seedcoder-{stage.replace('_', '-')}",
        deploy_mode="cluster",
        conf=conf,
        executor_memory=res.memory.replace("Gi", "g"),
        driver_memory="8g",
        **kw,
    )


def pod_operator(task_id: str, stage: str, module: str, args: list[str], res: PodResources, runtime: Runtime,
                 extras: PodExtras, **kw: Any):
    from kubernetes.client import models as k8s
    from stage_operators import StagePodOperator

    limits = {"cpu": res.cpu, "memory": res.memory, "ephemeral-storage": res.ephemeral_storage}
    if res.gpus:
        limits["nvidia.com/gpu"] = str(res.gpus)
    volumes, mounts = extras.k8s_volumes()
    if res.shm_size:
        volumes.append(k8s.V1Volume(name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory",
                                                                                     size_limit=res.shm_size)))
        mounts.append(k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm"))
    if res.gpus:
        kw.setdefault("pool", GPU_POOL)
    return StagePodOperator(
        stage=stage,
        task_id=task_id,
        name=f"seedcoder-{stage.replace('_', '-')}",
        namespace=NAMESPACE,
        image=IMAGES[runtime],
        cmds=["python", "-m", module],
        arguments=args,
        env_vars=extras.k8s_env(),
        env_from=extras.k8s_env_from(),
        container_resources=k8s.V1ResourceRequirements(requests=dict(limits), limits=limits),
        node_selector=dict(res.node_selector) or None,
        tolerations=[k8s.V1Toleration(**t) for t in res.tolerations] or None,
        volumes=volumes or None,
        volume_mounts=mounts or None,
        service_account_name=SERVICE_ACCOUNT,
        labels={"app.kubernetes.io/part-of": "seedcoder", "seedcoder/stage": stage},
        deferrable=True,
        on_finish_action="delete_pod",
        get_logs=True,
        **kw,
    )


def event_ids(extras: list[dict], kind: PartitionKind = "snapshot") -> list[str]:
    """Every partition id the triggering events name (``snapshots`` lists, or ``snapshot``), sorted and unique.

    >>> event_ids([{"snapshot": "2026-09", "snapshots": ["2026-08", "2026-09"]}, {"snapshot": "2026-10"}, {}])
    ['2026-08', '2026-09', '2026-10']
    """
    found = set()
    for extra in extras:
        found.update(extra.get(f"{kind}s") or ([extra[kind]] if extra.get(kind) else []))
    return sorted(found)


def partition_ids(kind: PartitionKind, context: Any) -> str:
    """The run's ids of ``kind``: the param, else every triggering Asset event's, else (snapshots) the data interval.

    Several ids come back comma-separated in snapshot order, so one run processes every event it carries.
    """
    from lake.cli import split_ids

    params = context.get("params") or {}
    if params.get(kind):
        return ",".join(split_ids(str(params[kind]), kind))
    extras = [event.extra or {} for events in (context.get("triggering_asset_events") or {}).values()
              for event in events]
    if ids := event_ids(extras, kind):
        return ",".join(split_ids(",".join(ids), kind))
    start = context.get("data_interval_start")
    if kind == "snapshot" and start is not None:
        return start.strftime("%Y-%m")
    raise ValueError(f"no {kind}: give the '{kind}' param, or trigger from an Asset event that carries one")


@task(task_id="snapshot")
def resolve_snapshot(**context: Any) -> str:
    """The run's snapshot id(s): the ``snapshot`` param, else the triggering Asset events, else the data interval."""
    return partition_ids("snapshot", context)


@task(task_id="release")
def resolve_release(**context: Any) -> str:
    """The run's release name(s): the ``release`` param, else the triggering Asset events."""
    return partition_ids("release", context)


@task(task_id="scorer")
def resolve_scorer(**context: Any) -> str:
    """The scorer version the run makes (the ``scorer`` param)."""
    return partition_ids("scorer", context)


def publish(asset: Asset, stage: str, partition: PartitionKind = "snapshot",
            extra_metrics: dict[str, str] | tuple[str, ...] = ()):
    """A task that emits ``asset`` with the partition ids and the stage's numbers as the event's extra.

    The extra names the last id under ``partition`` and all of them under ``partition + "s"`` (a run may have
    processed several); ``extra_metrics`` copies metrics of the last run's stats into it, as ``{extra key: metric}``
    or metric names (e.g. a model's location).
    """
    extra_metrics = extra_metrics if isinstance(extra_metrics, dict) else {name: name for name in extra_metrics}

    @task(task_id=f"publish_{stage}", outlets=[asset])
    def _publish(ids: str, **context: Any) -> dict:
        summary = committed_summary(ids, stage, partition)
        names = ids.split(",")
        extra = {partition: names[-1], f"{partition}s": names, "uri": summary["uri"],
                 "records_out": summary["records_out"],
                 **({"results": summary["results"]} if "results" in summary else {})}
        if extra_metrics:
            from lake.config import load_config
            from lake.stage import Partition

            metrics = load_config().open_lake().stats(Partition(partition, names[-1]), stage)["metrics"]
            extra.update({key: metrics.get(name) for key, name in extra_metrics.items()})
        context["outlet_events"][asset].extra = extra
        print(json.dumps(summary, indent=2), file=sys.stderr)
        return summary

    return _publish
