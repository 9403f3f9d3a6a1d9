"""The seedcoder chart: lint, render with inline values, validate every object against Kubernetes 1.37, assert.

No cluster runs here: `helm template` renders offline and kubernetes-validate checks each object against the
API's OpenAPI schema (strict: unknown fields are errors).
"""

from __future__ import annotations

import json
import re

import kubernetes_validate
import pytest
import yaml

from tests.helm.chart_tools import CHART, KUBERNETES_VERSION, REPO, REQUIRED, RenderError, run_helm

COMPONENTS = {"api-server": ["airflow", "api-server"], "scheduler": ["airflow", "scheduler"],
              "dag-processor": ["airflow", "dag-processor"], "triggerer": ["airflow", "triggerer"]}

FULL_VALUES = {
    "images": {"airflow": {"tag": "1.2.3", "pullPolicy": "Always"}, "gpu": {"repository": "registry.local/gpu"}},
    "imagePullSecrets": ["registry-creds"],
    "airflow": {
        "database": {"key": "sql_alchemy_conn"},
        "extraEnv": [{"name": "AIRFLOW__CORE__PARALLELISM", "value": "64"}],
        "nodeSelector": {"pool": "system"},
        "tolerations": [{"key": "system", "operator": "Exists", "effect": "NoSchedule"}],
        "serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/airflow"},
        "apiServer": {"replicas": 2, "serviceType": "LoadBalancer", "port": 9090},
    },
    "stages": {"namespace": "stages", "gpuPool": {"name": "h100", "slots": 3},
               "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/stage"}},
               "spark": {"connId": "spark_prod", "maxExecutors": 200}},
    "lake": {"root": "s3://corp-lake/seedcoder", "s3Endpoint": "http://minio.storage:9000",
             "credentialsSecret": "lake-s3", "region": "eu-west-1"},
}


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


@pytest.fixture(scope="module")
def default_objects(render) -> list[dict]:
    return render()


@pytest.fixture(scope="module")
def full_objects(render) -> list[dict]:
    return render(FULL_VALUES, namespace="platform", release="prod")


# -- lint and schema ----------------------------------------------------------------------------------------

def test_helm_lint_strict(helm):
    proc = run_helm(helm, "lint", "--strict", str(CHART), values=REQUIRED)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("values", [{}, FULL_VALUES], ids=["defaults", "full"])
def test_every_object_is_valid_kubernetes(render, values):
    objects = render(values)
    assert len(objects) >= 13
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


GITHUB = {"stages": {"github": {"existingSecret": "gh"}}}


@pytest.mark.parametrize("missing, message", [
    ({"airflow": {"database": {"existingSecret": ""}, "existingSecret": "keys"}, **GITHUB},
     "airflow.database.existingSecret"),
    ({"airflow": {"database": {"existingSecret": "pg"}, "existingSecret": ""}, **GITHUB}, "airflow.existingSecret"),
    ({"airflow": {"database": {"existingSecret": "pg"}, "existingSecret": "keys"}}, "stages.github.existingSecret"),
])
def test_required_values_fail_fast_naming_the_value(render, missing, message):
    with pytest.raises(RenderError, match=re.escape(message) + " is required"):
        render(missing, with_required=False)


@pytest.mark.parametrize("values, complaint", [
    ({"bogus": 1}, "additional properties 'bogus' not allowed"),
    ({"airflow": {"scheduler": {"replicaz": 2}}}, "additional properties 'replicaz' not allowed"),
    ({"lake": {"root": "/local/path"}}, "/lake/root"),
    ({"images": {"airflow": {"pullPolicy": "Sometimes"}}}, "/images/airflow/pullPolicy"),
    ({"stages": {"gpuPool": {"slots": 0}}}, "/stages/gpuPool/slots"),
    ({"airflow": {"apiServer": {"resources": {"limits": {"cpu": "lots"}}}}}, "/airflow/apiServer/resources/limits/cpu"),
])
def test_schema_rejects_bad_values(render, values, complaint):
    with pytest.raises(RenderError, match=re.escape(complaint)):
        render(values)


CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_every_values_file_lints_renders_and_validates(helm, values_file):
    """helm lint --strict and helm template of each values file of ci/ (chart-testing's convention), every
    object validated against the Kubernetes schema."""
    lint = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(values_file))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    proc = run_helm(helm, "template", "seedcoder", str(CHART), "--namespace", "seedcoder", "-f", str(values_file))
    assert proc.returncode == 0, proc.stderr
    objects = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
    assert len(objects) >= 13
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert len(CI_VALUES) >= 2


def test_schema_is_strict_everywhere():
    schema = json.loads((CHART / "values.schema.json").read_text())

    def objects(node, path="$"):
        if isinstance(node, dict):
            if node.get("type") == "object":
                yield path, node
            for key, child in node.items():
                yield from objects(child, f"{path}.{key}")

    loose = [path for path, node in objects(schema)
             if "properties" in node and node.get("additionalProperties") is not False]
    assert not loose, f"objects that accept unknown keys: {loose}"


def test_every_values_key_has_a_comment_above_it():
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    for number, line in enumerate(lines):
        if re.match(r"^\s*[A-Za-z][\w-]*:", line):
            above = next((p.strip() for p in reversed(lines[:number]) if p.strip()), "")
            if not above.startswith("#"):
                undocumented.append(f"values.yaml:{number + 1}: {line.strip()}")
    assert not undocumented, "\n".join(undocumented)


MAPS = ("resources", "nodeSelector", "annotations", "serviceAccountAnnotations")  # free-form keys below these


def test_schema_and_values_yaml_agree():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())

    def keys(node, prefix=""):
        for key, value in node.items():
            yield prefix + key
            if isinstance(value, dict) and key not in MAPS:
                yield from keys(value, prefix + key + ".")

    def schema_keys(node, prefix=""):
        for key, sub in node.get("properties", {}).items():
            yield prefix + key
            if sub.get("additionalProperties") is False and key not in MAPS:
                yield from schema_keys(sub, prefix + key + ".")

    assert set(keys(values)) == set(schema_keys(schema)) - {"global"}


# -- the Airflow components ---------------------------------------------------------------------------------

def airflow_deployments(objects: list[dict]) -> dict[str, dict]:
    """The Deployments of Airflow's components (not the platform's services: the sandbox, the oracle)."""
    return {name: d for name, d in by_kind(objects, "Deployment").items()
            if d["metadata"]["labels"]["app.kubernetes.io/component"] not in ("sandbox", "oracle")}


def test_four_airflow_components_with_our_image(full_objects):
    deployments = airflow_deployments(full_objects)
    assert set(deployments) == {f"prod-seedcoder-{c}" for c in COMPONENTS}
    for component, args in COMPONENTS.items():
        spec = deployments[f"prod-seedcoder-{component}"]["spec"]
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == "ghcr.io/seedcoder-platform/airflow:1.2.3"
        assert container["imagePullPolicy"] == "Always"
        assert container["args"][:2] == args
        assert "livenessProbe" in container
        assert pod["serviceAccountName"] == "prod-seedcoder-airflow"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["imagePullSecrets"] == [{"name": "registry-creds"}]
        assert pod["nodeSelector"] == {"pool": "system"}
        assert pod["initContainers"][0]["args"][:3] == ["airflow", "db", "check-migrations"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts["/etc/seedcoder"] == "platform-config"
    assert deployments["prod-seedcoder-api-server"]["spec"]["replicas"] == 2


def test_api_server_service_routes_to_the_api_server(full_objects):
    service = by_kind(full_objects, "Service")["prod-seedcoder-api-server"]
    deployment = by_kind(full_objects, "Deployment")["prod-seedcoder-api-server"]
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert port["port"] == 9090 and container["ports"][0]["containerPort"] == 9090
    assert container["args"][2:4] == ["--port", "9090"]
    env = env_of(container)
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]["value"] == (
        "http://prod-seedcoder-api-server.platform.svc:9090/execution/")


def test_postgres_connection_and_keys_come_from_secrets(full_objects):
    for deployment in airflow_deployments(full_objects).values():
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]["valueFrom"]["secretKeyRef"] == {
            "name": "airflow-postgres", "key": "sql_alchemy_conn"}
        for var, key in [("AIRFLOW__CORE__FERNET_KEY", "fernet-key"), ("AIRFLOW__API_AUTH__JWT_SECRET", "jwt-secret"),
                         ("AIRFLOW__API__SECRET_KEY", "api-secret-key")]:
            assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "airflow-keys", "key": key}
            assert "value" not in env[var]
        assert env["AIRFLOW__CORE__PARALLELISM"]["value"] == "64"


def test_airflow_settings_name_real_airflow_options(default_objects):
    """Every AIRFLOW__SECTION__KEY the chart sets is an option this Airflow knows (a typo would be ignored)."""
    from airflow.configuration import conf

    deployment = by_kind(default_objects, "Deployment")["seedcoder-scheduler"]
    names = [n for n in env_of(deployment["spec"]["template"]["spec"]["containers"][0]) if n.startswith("AIRFLOW__")]
    assert len(names) >= 8
    for name in names:
        _, section, key = name.split("__", 2)
        options = conf.configuration_description.get(section.lower(), {}).get("options", {})
        assert key.lower() in options, f"{name} is not an Airflow option"


def test_spark_connection_resolves_in_the_spark_provider(full_objects, monkeypatch):
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    env = env_of(by_kind(full_objects, "Deployment")["prod-seedcoder-scheduler"]["spec"]["template"]["spec"]
                 ["containers"][0])
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_PROD", env["AIRFLOW_CONN_SPARK_PROD"]["value"])
    resolved = SparkSubmitHook(conn_id="spark_prod")._resolve_connection()
    assert resolved["master"] == "k8s://https://kubernetes.default.svc:443"
    assert resolved["deploy_mode"] == "cluster"
    assert resolved["namespace"] == "stages"
    assert env["SEEDCODER_SPARK_CONN_ID"]["value"] == "spark_prod"
    assert env["SEEDCODER_SPARK_MAX_EXECUTORS"]["value"] == "200"


def test_stage_launcher_settings(full_objects, default_objects):
    env = env_of(by_kind(full_objects, "Deployment")["prod-seedcoder-scheduler"]["spec"]["template"]["spec"]
                 ["containers"][0])
    assert env["SEEDCODER_PROFILE"]["value"] == "k8s"
    assert env["SEEDCODER_NAMESPACE"]["value"] == "stages"
    assert env["SEEDCODER_SERVICE_ACCOUNT"]["value"] == "seedcoder-stage"
    assert env["SEEDCODER_GPU_POOL"]["value"] == "h100"
    assert env["SEEDCODER_SPARK_IMAGE"]["value"] == "ghcr.io/seedcoder-platform/spark:0.1.0"
    assert env["SEEDCODER_GPU_IMAGE"]["value"] == "registry.local/gpu:0.1.0"
    default_env = env_of(by_kind(default_objects, "Deployment")["seedcoder-scheduler"]["spec"]["template"]["spec"]
                         ["containers"][0])
    assert default_env["SEEDCODER_NAMESPACE"]["value"] == "seedcoder", "stages default to the release namespace"


# -- the lake, the config, the pool, RBAC -------------------------------------------------------------------

def test_lake_s3_settings(full_objects, default_objects):
    env = env_of(by_kind(full_objects, "Deployment")["prod-seedcoder-triggerer"]["spec"]["template"]["spec"]
                 ["containers"][0])
    assert env["SEEDCODER_LAKE_ROOT"]["value"] == "s3://corp-lake/seedcoder"
    assert env["SEEDCODER_S3_ENDPOINT"]["value"] == "http://minio.storage:9000"
    assert env["AWS_REGION"]["value"] == "eu-west-1"
    assert env["SEEDCODER_S3_SECRET"]["value"] == "lake-s3"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "lake-s3", "key": "AWS_ACCESS_KEY_ID"}
    default_env = env_of(by_kind(default_objects, "Deployment")["seedcoder-triggerer"]["spec"]["template"]["spec"]
                         ["containers"][0])
    assert "AWS_ACCESS_KEY_ID" not in default_env, "without a credentials Secret the pods use their own identity"
    assert default_env["SEEDCODER_LAKE_ROOT"]["value"] == "s3://seedcoder-lake/lake"


def test_configmap_carries_the_k8s_profile(default_objects, render):
    config = by_kind(default_objects, "ConfigMap")["seedcoder-config"]
    assert config["data"]["k8s.yaml"] == (REPO / "config" / "k8s.yaml").read_text().rstrip("\n")
    assert yaml.safe_load(config["data"]["k8s.yaml"])["profile"] == "k8s"
    override = render({"platformConfig": "profile: k8s\nlake:\n  root: s3://other/lake\n"})
    assert yaml.safe_load(by_kind(override, "ConfigMap")["seedcoder-config"]["data"]["k8s.yaml"])["lake"] == {
        "root": "s3://other/lake"}
    checksums = {d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
                 for d in by_kind(default_objects, "Deployment").values()}
    override_checksums = {d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
                          for d in by_kind(override, "Deployment").values()}
    assert len(checksums) == 1 and checksums != override_checksums, "a config change rolls the pods"


def test_the_profile_in_the_configmap_loads(default_objects, tmp_path, monkeypatch):
    from lake.config import load_config

    path = tmp_path / "k8s.yaml"
    path.write_text(by_kind(default_objects, "ConfigMap")["seedcoder-config"]["data"]["k8s.yaml"])
    monkeypatch.setenv("SEEDCODER_LAKE_ROOT", "s3://corp-lake/seedcoder")
    cfg = load_config(path)
    assert cfg.profile == "k8s" and cfg.lake.root == "s3://corp-lake/seedcoder"


def test_init_job_migrates_and_creates_the_gpu_pool_with_deferred_slots(full_objects):
    job = by_kind(full_objects, "Job")["prod-seedcoder-init"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == ["bash", "-ec"]
    script = container["args"][2]
    assert script.startswith("airflow db migrate && ")
    assert "airflow pools set 'h100' 3 " in script and script.endswith("--include-deferred")
    assert "initContainers" not in job["spec"]["template"]["spec"], "the job itself runs the migration"


def test_gpu_pool_command_is_accepted_by_airflow(full_objects):
    """The pool command parses with this Airflow's own CLI parser (flags and positionals in order)."""
    import shlex

    from airflow.cli.cli_parser import get_parser

    script = by_kind(full_objects, "Job")["prod-seedcoder-init"]["spec"]["template"]["spec"]["containers"][0]["args"][2]
    pool_command = shlex.split(script.split(" && ", 1)[1])
    args = get_parser().parse_args(pool_command[1:])
    assert (args.pool, args.slots, args.include_deferred) == ("h100", 3, True)


def test_rbac_for_the_launcher_and_the_stage_pods(full_objects):
    accounts = by_kind(full_objects, "ServiceAccount")
    assert accounts["seedcoder-stage"]["metadata"]["namespace"] == "stages"
    assert accounts["prod-seedcoder-airflow"]["metadata"]["namespace"] == "platform"
    assert accounts["seedcoder-stage"]["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/stage"}
    roles, bindings = by_kind(full_objects, "Role"), by_kind(full_objects, "RoleBinding")

    def can(role: dict, resource: str, verb: str) -> bool:
        return any(resource in r["resources"] and verb in r["verbs"] for r in role["rules"])

    launcher = roles["prod-seedcoder-launcher"]
    assert launcher["metadata"]["namespace"] == "stages"
    for resource, verb in [("pods", "create"), ("pods", "delete"), ("pods", "watch"), ("pods/log", "get"),
                           ("configmaps", "create"), ("events", "list")]:
        assert can(launcher, resource, verb), f"the launcher cannot {verb} {resource}"
    assert bindings["prod-seedcoder-launcher"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "prod-seedcoder-airflow", "namespace": "platform"}]

    stage = roles["prod-seedcoder-stage"]
    for resource in ("pods", "services", "configmaps", "persistentvolumeclaims"):
        assert can(stage, resource, "create") and can(stage, resource, "deletecollection")
    assert bindings["prod-seedcoder-stage"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "seedcoder-stage", "namespace": "stages"}]
    assert bindings["prod-seedcoder-stage"]["roleRef"]["name"] == "prod-seedcoder-stage"
    assert not any(o["kind"] in ("ClusterRole", "ClusterRoleBinding") for o in full_objects), "namespaced only"


def test_stage_service_account_matches_the_launcher_default():
    from stage_launcher import SERVICE_ACCOUNT

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["stages"]["serviceAccount"]["name"] == SERVICE_ACCOUNT == "seedcoder-stage"


def test_every_airflow_command_parses_with_this_airflow(full_objects):
    """Container args, init containers and probes name real `airflow` subcommands and flags."""
    from airflow.cli.cli_parser import get_parser

    commands = []
    for obj in full_objects:
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            if container["args"][0] == "airflow":
                commands.append(container["args"])
            probe = container.get("livenessProbe", {}).get("exec", {}).get("command")
            if probe:
                commands.append(probe)
    assert len(commands) >= 11
    parser = get_parser()
    for command in commands:
        args = parser.parse_args(command[1:])
        assert callable(args.func), command


def test_packaged_chart_carries_the_linked_config(helm, tmp_path):
    """files/k8s.yaml links to config/k8s.yaml; `helm package` must embed the file, not a dangling link."""
    packaged = run_helm(helm, "package", str(CHART), "--destination", str(tmp_path))
    assert packaged.returncode == 0, packaged.stderr
    (archive,) = tmp_path.glob("seedcoder-*.tgz")
    rendered = run_helm(helm, "template", "seedcoder", str(archive), values=REQUIRED)
    assert rendered.returncode == 0, rendered.stderr
    config = by_kind([d for d in yaml.safe_load_all(rendered.stdout) if d], "ConfigMap")["seedcoder-config"]
    assert config["data"]["k8s.yaml"] == (REPO / "config" / "k8s.yaml").read_text().rstrip("\n")


# -- what the stages need: Secrets, volume claims, the configuration, the oracle ----------------------------

PRODUCTION = yaml.safe_load((CHART / "ci" / "production-values.yaml").read_text())


@pytest.fixture(scope="module")
def production_objects(render) -> list[dict]:
    return render(PRODUCTION, namespace="platform", release="prod")


def scheduler_env(objects: list[dict], name: str = "prod-seedcoder-scheduler") -> dict[str, dict]:
    return env_of(by_kind(objects, "Deployment")[name]["spec"]["template"]["spec"]["containers"][0])


def test_the_launcher_reads_what_the_chart_sets(production_objects, default_objects):
    """Every variable the stage launcher reads to name a Secret, a claim or the configuration is set by the chart."""
    import stage_launcher

    env = scheduler_env(production_objects)
    assert env[stage_launcher.SECRETS["github"].name_env]["value"] == "github-token"
    assert env[stage_launcher.SECRETS["oracle"].name_env]["value"] == "oracle-key"
    assert env[stage_launcher.VOLUMES["models"].claim_env]["value"] == "seedcoder-models"
    assert env[stage_launcher.VOLUMES["eval_sets"].claim_env]["value"] == "seedcoder-eval-sets"
    assert env["SEEDCODER_CONFIG_MAP"]["value"] == "prod-seedcoder-config"
    assert env["SEEDCODER_CONFIG"]["value"] == stage_launcher.CONFIG_FILE
    template = env["SEEDCODER_SPARK_POD_TEMPLATE"]["value"]
    assert template.startswith(stage_launcher.CONFIG_DIR + "/")
    default = scheduler_env(default_objects, "seedcoder-scheduler")
    assert "SEEDCODER_MODELS_CLAIM" not in default and "SEEDCODER_ORACLE_ENDPOINT" not in default


def test_stage_pods_can_mount_the_configuration(production_objects):
    import stage_launcher

    maps = [o for o in production_objects if o["kind"] == "ConfigMap"]
    assert {(m["metadata"]["namespace"], m["metadata"]["name"]) for m in maps} == {
        ("platform", "prod-seedcoder-config"), ("seedcoder-stages", "prod-seedcoder-config")}
    data = maps[0]["data"]
    template_file = scheduler_env(production_objects)["SEEDCODER_SPARK_POD_TEMPLATE"]["value"]
    pod = yaml.safe_load(data[template_file.removeprefix(stage_launcher.CONFIG_DIR + "/")])
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    (volume,) = pod["spec"]["volumes"]
    assert volume["configMap"]["name"] == "prod-seedcoder-config"
    assert pod["spec"]["containers"][0]["volumeMounts"] == [
        {"name": volume["name"], "mountPath": stage_launcher.CONFIG_DIR, "readOnly": True}]
    assert "k8s.yaml" in data and stage_launcher.CONFIG_FILE == f"{stage_launcher.CONFIG_DIR}/k8s.yaml"


def test_the_launcher_can_run_multi_node_jobs(production_objects):
    launcher = by_kind(production_objects, "Role")["prod-seedcoder-launcher"]
    jobs = [r for r in launcher["rules"] if "jobs" in r["resources"]]
    assert jobs and jobs[0]["apiGroups"] == ["batch"] and {"create", "watch", "delete"} <= set(jobs[0]["verbs"])
    services = [r for r in launcher["rules"] if "services" in r["resources"]]
    assert services and "create" in services[0]["verbs"], "the headless Service of a multi-node stage"


def test_the_oracle_is_deployed_where_the_stage_looks_for_it(production_objects, default_objects):
    assert "prod-seedcoder-oracle" not in by_kind(default_objects, "Deployment")
    deployment = by_kind(production_objects, "Deployment")["prod-seedcoder-oracle"]
    service = by_kind(production_objects, "Service")["prod-seedcoder-oracle"]
    assert deployment["metadata"]["namespace"] == service["metadata"]["namespace"] == "seedcoder-stages"
    env = scheduler_env(production_objects)
    port = service["spec"]["ports"][0]["port"]
    assert env["SEEDCODER_ORACLE_ENDPOINT"]["value"] == f"http://prod-seedcoder-oracle.seedcoder-stages.svc:{port}/v1"
    assert env["SEEDCODER_ORACLE_MODEL"]["value"] == "deepseek-ai/DeepSeek-V2-Chat"
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "ghcr.io/seedcoder-platform/gpu:0.1.0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert env_of(container)["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "oracle-key", "key": "SEEDCODER_ORACLE_API_KEY"}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/models"]["readOnly"] and PRODUCTION["oracle"]["model"].startswith("/models/")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[mounts["/models"]["name"]]["persistentVolumeClaim"]["claimName"] == "seedcoder-models"


def test_the_oracle_command_parses_with_vllms_own_parser(production_objects):
    """The Deployment's command line, parsed by the argument parser of the vLLM in the GPU environment."""
    import subprocess

    python = REPO / ".venv-gpu" / "bin" / "python"
    if not python.exists():
        pytest.skip(".venv-gpu is missing (scripts/bootstrap.sh gpu)")
    (container,) = by_kind(production_objects, "Deployment")["prod-seedcoder-oracle"]["spec"]["template"]["spec"][
        "containers"]
    assert container["command"] == ["vllm", "serve"]
    code = """
import json, sys
from vllm.entrypoints.cli.serve import ServeSubcommand
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser()
serve = ServeSubcommand()
serve.subparser_init(parser.add_subparsers(dest="subparser"))
args = parser.parse_args(["serve", *json.loads(sys.argv[1])])
serve.validate(args)
print(json.dumps({"model": args.model_tag, "served": args.served_model_name, "port": args.port,
                  "tp": args.tensor_parallel_size, "max_len": args.max_model_len}))
"""
    proc = subprocess.run([str(python), "-c", code, json.dumps(container["args"])], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parsed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert parsed == {"model": "/models/deepseek-v2-chat", "served": ["deepseek-ai/DeepSeek-V2-Chat"], "port": 8000,
                      "tp": 8, "max_len": 16384}
