"""The chart's sandbox service: its objects, and the service run here the way the rendered pod runs it.

The rendered Deployment is the contract: its command and arguments, its environment (the platform configuration
from the chart's own ConfigMap) and the capabilities it grants are what the server gets below, as root under a
bounding set of exactly those capabilities with no_new_privs (allowPrivilegeEscalation: false). What a cluster
adds on top (the pod's user namespace, an unmasked /proc, the seccomp and AppArmor profiles) is checked as
rendered and validated against the Kubernetes API schema; only a cluster can run it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.helm.chart_tools import CHART, KUBERNETES_VERSION, REPO
from tests.processes import stop_process_groups

PRODUCTION = yaml.safe_load((CHART / "ci" / "production-values.yaml").read_text())
PYTHON = REPO / ".venv-gpu" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def objects(render, port) -> dict[tuple[str, str], dict]:
    values = {**PRODUCTION, "sandbox": {**PRODUCTION.get("sandbox", {}), "port": port}}
    rendered = render(values, namespace="platform", release="prod")
    for obj in rendered:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    return {(o["kind"], o["metadata"]["name"]): o for o in rendered}


@pytest.fixture(scope="module")
def pod(objects) -> dict:
    return objects["Deployment", "prod-seedcoder-sandbox"]["spec"]["template"]


def test_the_service_and_its_policy_select_the_sandbox_pods(objects, pod, port):
    deployment = objects["Deployment", "prod-seedcoder-sandbox"]
    service = objects["Service", "prod-seedcoder-sandbox"]
    policy = objects["NetworkPolicy", "prod-seedcoder-sandbox"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    namespaces = {o["metadata"]["namespace"] for o in (deployment, service, policy)}
    assert namespaces == {"seedcoder-stages"}, "beside the stage pods that call it"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "ghcr.io/seedcoder-platform/sandbox:0.1.0"
    assert service["spec"]["ports"][0]["port"] == container["ports"][0]["containerPort"] == port
    # Nothing out, ever; in, only the service port.
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"} and policy["spec"]["egress"] == []
    (rule,) = policy["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [container["ports"][0]["name"]]
    scheduler = objects["Deployment", "prod-seedcoder-scheduler"]["spec"]["template"]["spec"]["containers"][0]
    url = {e["name"]: e.get("value") for e in scheduler["env"]}["SEEDCODER_SANDBOX_URL"]
    assert url == f"http://prod-seedcoder-sandbox.seedcoder-stages.svc:{port}"


def test_the_pod_runs_in_a_user_namespace_with_what_bubblewrap_needs(pod):
    spec = pod["spec"]
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert spec["hostUsers"] is False, "the container's root is not the node's"
    assert security["procMount"] == "Unmasked", "bubblewrap mounts a fresh /proc (allowed: in a user namespace)"
    assert spec["securityContext"]["seccompProfile"] == {"type": "Unconfined"}
    assert security["appArmorProfile"] == {"type": "Unconfined"}
    assert security["runAsUser"] == 0 and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["TMPDIR"] in mounts, "the scratch directory is a volume (the root file system is read-only)"
    assert Path(env["SEEDCODER_CONFIG"]).parent.as_posix() in mounts
    assert spec["automountServiceAccountToken"] is False, "the sandbox calls no API"


def test_the_values_can_name_localhost_profiles(render):
    values = {"sandbox": {"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/userns.json"},
                          "appArmorProfile": {"type": "Localhost", "localhostProfile": "seedcoder-sandbox"}}}
    (deployment,) = [o for o in render(values) if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-sandbox")]
    kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    spec = deployment["spec"]["template"]["spec"]
    assert spec["securityContext"]["seccompProfile"] == {"type": "Localhost", "localhostProfile": "profiles/userns.json"}
    assert spec["containers"][0]["securityContext"]["appArmorProfile"] == {
        "type": "Localhost", "localhostProfile": "seedcoder-sandbox"}
    disabled = render({"sandbox": {"enabled": False}})
    assert not [o for o in disabled if o["metadata"]["name"].endswith("-sandbox")]
    assert all(e["name"] != "SEEDCODER_SANDBOX_URL" for o in disabled if o["kind"] == "Deployment"
               for e in o["spec"]["template"]["spec"]["containers"][0].get("env", []))


# -- the rendered pod's server, run here -----------------------------------------------------------------------

def bounding_set(capabilities: list[str]) -> str:
    return ",".join(["-all", *(f"+{c.lower()}" for c in capabilities)])


@pytest.fixture(scope="module")
def runnable():
    if os.geteuid() != 0:
        pytest.skip("the sandbox's per-slot uid switch needs root (as in its pod)")
    if not PYTHON.exists():
        pytest.skip(".venv-gpu is missing (scripts/bootstrap.sh gpu)")
    missing = [t for t in ("bwrap", "setpriv", "prlimit") if not shutil.which(t)]
    if missing:
        pytest.skip(f"sandbox tools missing: {missing} (scripts/toolchains.sh)")


def pod_environment(objects, pod, tmp_path: Path) -> dict[str, str]:
    """The container's environment with the ConfigMap's files where its mount puts them (here: under tmp_path)."""
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (volume,) = [v for v in pod["spec"]["volumes"] if "configMap" in v]
    config_map = objects["ConfigMap", volume["configMap"]["name"]]
    assert config_map["metadata"]["namespace"] == "seedcoder-stages", "a pod mounts a ConfigMap of its namespace"
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for name, text in config_map["data"].items():
        (config_dir / name).write_text(text)
    env["SEEDCODER_CONFIG"] = str(config_dir / Path(env["SEEDCODER_CONFIG"]).relative_to(mounts[volume["name"]]))
    # This machine's choices, not the pod's: two slots for two cores, and the machine's own /tmp, where every
    # sandbox pool here claims its slots' uids (a pod has the uid range of its own user namespace to itself).
    env["SEEDCODER_SANDBOX_WORKERS"] = "2"
    env.pop("TMPDIR")
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(REPO), **env}


def test_the_server_runs_with_only_the_granted_capabilities(runnable, objects, pod, tmp_path):
    (container,) = pod["spec"]["containers"]
    security = container["securityContext"]
    env = pod_environment(objects, pod, tmp_path)
    command = [str(PYTHON) if word == "python" else word for word in container["command"] + container["args"]]
    assert command[1:3] == ["-m", "training.sandbox"]
    cage = ["setpriv", "--no-new-privs", f"--bounding-set={bounding_set(security['capabilities']['add'])}",
            "--inh-caps=-all"]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(cage + command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    port = container["ports"][0]["containerPort"]
    base = f"http://127.0.0.1:{port}"  # the pod's 0.0.0.0, reached over loopback here
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                    health = json.load(response)
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
                time.sleep(0.5)
        assert health["isolation"] == "full", health

        def judge(body: dict) -> dict:
            request = urllib.request.Request(f"{base}/run_tests", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.load(response)

        python = judge({"code": "def add(a, b):\n    return a + b\n", "language": "python",
                        "tests": {"code": "assert add(1, 2) == 3", "entry_point": "add"}})
        assert python["verdict"] == "passed" and python["isolation"] == "full", python
        wrong = judge({"code": "def add(a, b):\n    return a - b\n", "language": "python",
                       "tests": {"code": "assert add(1, 2) == 3", "entry_point": "add"}})
        assert wrong["verdict"] == "wrong_answer", wrong
        cpp = judge({"code": "#include <iostream>\nint main(){int a,b;std::cin>>a>>b;std::cout<<a+b<<'\\n';}\n",
                     "language": "cpp", "tests": {"kind": "stdio", "cases": [{"stdin": "2 3", "stdout": "5"}]}})
        assert cpp["verdict"] == "passed", cpp
    finally:
        stop_process_groups(server)
        log.close()


def test_without_the_uid_switch_capability_the_sandbox_refuses_to_start(runnable, objects, pod, tmp_path):
    """The granted set is load-bearing: drop SETUID and the probe fails (fail closed)."""
    (container,) = pod["spec"]["containers"]
    granted = container["securityContext"]["capabilities"]["add"]
    assert "SETUID" in granted
    env = pod_environment(objects, pod, tmp_path)
    cage = ["setpriv", "--no-new-privs", f"--bounding-set={bounding_set([c for c in granted if c != 'SETUID'])}",
            "--inh-caps=-all"]
    proc = subprocess.run(cage + [str(PYTHON), "-m", "training.sandbox", "check"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "refusing to run" in proc.stderr
