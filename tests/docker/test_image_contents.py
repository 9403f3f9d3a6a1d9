"""Each image holds what the code it runs imports: our packages (COPY) and the third-party ones (its lock).

The stage modules come from the DAGs on the k8s profile (what each operator runs in which image), and the Airflow
image runs dags/ and plugins/. Their imports are followed through our packages statically (every ``import``, also
those inside functions, which run as surely as the top-level ones; not those under ``if TYPE_CHECKING``). This
is the fast check of CI; ``scripts/images.sh smoke`` runs every stage in its built image.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from test_dockerfiles import DOCKER, REPO, copies, install_lock_print, sandbox_requirements

FIRST_PARTY = ("lake", "spark_jobs", "training")
PLUGIN_PACKAGES = {p.parent.name for p in (REPO / "plugins").glob("*/__init__.py")}
PLUGIN_MODULES = ({p.stem for p in (REPO / "plugins").glob("*.py")} | {p.stem for p in (REPO / "dags").glob("*.py")}
                  | PLUGIN_PACKAGES)
LOCK_OF = {"airflow": "platform.lock", "spark": "platform.lock", "gpu": "gpu.lock"}
VENV_OF = {"platform.lock": REPO / ".venv", "gpu.lock": REPO / ".venv-gpu"}


def module_file(name: str) -> Path | None:
    parts = name.split(".")
    root = REPO / "plugins" if parts[0] in PLUGIN_MODULES and (len(parts) == 1 or parts[0] in PLUGIN_PACKAGES) else REPO
    if parts[0] in PLUGIN_MODULES and (REPO / "dags" / f"{parts[0]}.py").exists():
        root = REPO / "dags"
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of everything ``path`` imports at run time (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    names = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}"))
    return {n for n in names if n}


@cache
def closure(roots: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """(our modules reached, third-party top-level names imported) from ``roots`` (run as ``python -m``, so a
    package's ``__main__`` too)."""
    ours, theirs, todo = set(), set(), list(roots)
    todo += [f"{root}.__main__" for root in roots if module_file(f"{root}.__main__")]
    while todo:
        name = todo.pop()
        top = name.split(".")[0]
        if top not in FIRST_PARTY and top not in PLUGIN_MODULES:
            if top not in sys.stdlib_module_names and top != "__future__":
                theirs.add(top)
            continue
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
            prefix = ".".join(parts[:i])
            path = module_file(prefix)
            if path is None or prefix in ours:
                continue
            ours.add(prefix)
            todo.extend(_imports(path, prefix))
    return frozenset(ours), frozenset(theirs)


@cache
def stage_modules() -> dict[str, tuple[str, ...]]:
    """Image -> the modules its containers run, from the DAGs as the k8s profile builds them."""
    code = f"""
import json, os, sys
os.environ["SEEDCODER_PROFILE"] = "k8s"
sys.path[:0] = [{str(REPO / 'plugins')!r}, {str(REPO / 'dags')!r}]
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from distributed_job import DistributedJobOperator
from stage_launcher import IMAGES
image_of = {{v: k for k, v in IMAGES.items() if k != "python"}}
bag = DagBag(dag_folder={str(REPO / 'dags')!r})
assert not bag.import_errors, bag.import_errors
out = {{"spark": ["lake.entry"], "gpu": [], "airflow": []}}
for dag in bag.dags.values():
    for t in dag.tasks:
        if isinstance(t, SparkSubmitOperator):
            out["spark"].append(t.application_args[0])
        elif isinstance(t, DistributedJobOperator):
            out[image_of[t.image]].append(t.module)
        elif isinstance(t, KubernetesPodOperator):
            out[image_of[t.image]].append(t.cmds[2])
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    found["airflow"] = sorted(PLUGIN_MODULES)
    return {image: tuple(sorted(set(mods))) for image, mods in found.items()}


def copied_packages(image: str) -> set[str]:
    return {src.rstrip("/").split("/")[0] for srcs, _ in copies(image) for src in srcs} | (
        {p.removesuffix(".py") for p in PLUGIN_MODULES} if image == "airflow" else set())


@pytest.mark.parametrize("image", ["airflow", "spark", "gpu"])
def test_the_image_copies_every_package_its_code_imports(image):
    """Regression: the GPU image lacked spark_jobs/ while pretraining imported spark_jobs.dataset.tokenizer."""
    modules = stage_modules()[image]
    assert modules, f"no stage runs in the {image} image"
    ours, _ = closure(modules)
    needed = {m.split(".")[0] for m in ours} & set(FIRST_PARTY)
    missing = needed - copied_packages(image)
    assert not missing, f"docker/{image} runs {modules} whose imports reach {sorted(missing)}, which it does not COPY"


def import_names(lock: str, distributions: list[str], *, with_dependencies: bool = False) -> frozenset[str]:
    """Top-level import names of ``distributions`` (and, with ``with_dependencies``, of everything they require),
    as installed in the venv that mirrors ``lock``'s image."""
    venv = VENV_OF[lock]
    if not (venv / "bin" / "python").exists():
        pytest.skip(f"{venv} is missing (scripts/bootstrap.sh)")
    code = """
import json, sys
from importlib import metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
todo, follow, kept = json.loads(sys.argv[1]), sys.argv[2] == "1", set()
while todo:
    name = canonicalize_name(todo.pop())
    if name in kept:
        continue
    kept.add(name)
    for req in (metadata.requires(name) or []) if follow else []:
        r = Requirement(req)
        if r.marker is None or r.marker.evaluate({"extra": ""}):
            todo.append(r.name)
names = {top for top, dists in metadata.packages_distributions().items()
         if any(canonicalize_name(d) in kept for d in dists)}
print(json.dumps(sorted(names)))
"""
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", code, json.dumps(distributions),
                           "1" if with_dependencies else "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return frozenset(json.loads(proc.stdout))


@cache
def importable_names(lock: str) -> frozenset[str]:
    """Top-level import names of the lock's packages minus the dev tools (from the venv that mirrors the image)."""
    return import_names(lock, sorted({line.split("==")[0] for line in install_lock_print(lock)}))


# (module, third-party name) imports an image's code reaches but never runs, each checked to stay inside a function:
# lake.schemas.to_spark_schema is the Spark bridge of the shared schemas (only spark_jobs call it); the GPU image
# reaches lake.schemas through lake.release (train_scorer reads a release's manifest) and has no pyspark. The
# sandbox service reaches lake.stage and lake.storage through `lake` (its __init__), whose readers and writers
# import pyarrow and boto3 inside the functions that need them.
NOT_RUN = {"gpu": {("lake.schemas", "pyspark")},
           "sandbox": {("lake.stage", "pyarrow"), ("lake.storage", "pyarrow"), ("lake.storage", "boto3"),
                       ("lake.storage", "botocore")}}


def importers(ours: frozenset[str], name: str) -> set[str]:
    return {m for m in ours if (path := module_file(m)) and name in {n.split(".")[0] for n in _imports(path, m)}}


def top_level_imports(module: str) -> set[str]:
    """Top-level names ``module`` imports at import time (module body, not inside functions)."""
    tree = ast.parse(module_file(module).read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("image", ["airflow", "spark", "gpu"])
def test_the_image_installs_every_third_party_package_its_code_imports(image):
    missing = missing_imports(image, stage_modules()[image], importable_names(LOCK_OF[image]))
    assert not missing, f"docker/{image}: its code imports {missing}, which {LOCK_OF[image]} (minus dev tools) lacks"


def missing_imports(image: str, modules: tuple[str, ...], available: frozenset[str]) -> list[str]:
    """Third-party names ``modules`` import (following our packages) that ``available`` lacks, except those the
    image's NOT_RUN exempts, each checked to be imported only inside a function."""
    ours, theirs = closure(modules)
    exempt = NOT_RUN.get(image, set())
    for module, name in exempt:
        assert name not in top_level_imports(module), f"{module} now imports {name} at import time"
    return sorted(name for name in theirs - available
                  if not importers(ours, name) <= {m for m, n in exempt if n == name})


def test_the_closure_sees_imports_inside_functions(tmp_path):
    """The check itself: a lazy import inside a function counts, one under TYPE_CHECKING does not."""
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import spark_jobs.session\n"
              "def f():\n    from spark_jobs.dataset import tokenizer\n")
    path = tmp_path / "m.py"
    path.write_text(source)
    assert _imports(path, "training.m") >= {"spark_jobs.dataset.tokenizer"}
    assert "spark_jobs.session" not in _imports(path, "training.m")
    assert DOCKER.is_dir()


# -- the sandbox service image: `python -m training.sandbox serve`, no stage --------------------------------

def test_the_sandbox_image_copies_and_installs_what_the_service_imports():
    modules = ("training.sandbox",)
    ours, _ = closure(modules)
    needed = {m.split(".")[0] for m in ours} & set(FIRST_PARTY)
    assert needed <= copied_packages("sandbox"), f"docker/sandbox lacks {sorted(needed - copied_packages('sandbox'))}"
    # requirements/sandbox.in installs with gpu.lock as constraints: its packages and their dependencies.
    available = import_names("gpu.lock", sandbox_requirements(), with_dependencies=True)
    missing = missing_imports("sandbox", modules, available)
    assert not missing, f"docker/sandbox: the service imports {missing}, which requirements/sandbox.in does not bring"
