"""Every stage of the pipeline in its image, launched exactly as the k8s profile launches it.

    scripts/images.sh smoke [--work DIR] [--snapshot YYYY-MM] [--s3-port 8473] [--skip-s3]

What is real: the images (scripts/images.sh build), the chart (``helm template`` gives the Airflow pods' environment
and the ConfigMap), Airflow (``dag.test()`` runs of the eight DAGs on the k8s profile: crawl, scorer and release by
manual runs with their conf, every other DAG by the Asset event its upstream DAG published), the operators the
launcher builds and their templates rendered from those runs, and the stage code in the images. What stands in
for Kubernetes (tests/k8s/harness.py intercepts the provider operators where they would call the API server):

- a pod (KubernetesPodOperator) runs as ``buildah run`` of its image with the pod's command, arguments and
  environment; Secret references resolve from the smoke's Secrets, the ConfigMap and the volume claims are
  directories bound at the pod's mount paths, emptyDirs are fresh directories;
- a Spark stage (SparkSubmitOperator) runs as the driver pod Spark on Kubernetes would start: the Spark image's
  entrypoint in ``driver`` mode with the submitted configuration as its properties file, driver environment and
  secretKeyRefs as environment, pod template and claims as mounts; the master is ``local[2]`` instead of the
  cluster (executors of this machine's two cores);
- the pretraining Job (KubernetesJobOperator) runs its pods with JOB_COMPLETION_INDEX and the Indexed Job's
  hostnames, its headless Service as host names of loopback (only if the Service operator created it);
- GitHub is the crawl tests' fake on loopback, which refuses requests without the token of the Secret.

Pass 1 runs the whole chain on one lake, a directory bound into every container like a volume (Spark's s3a needs
the hadoop-aws jars, which cannot be fetched here). Pass 2 copies the committed Spark outputs to the S3 server on
loopback (weed mini) and runs every non-Spark stage again against it. It ends with the table of committed stages.
Resource requests are not enforced (one 2-core machine); the GPU image is its CPU build. Takes 30-60 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "spark_jobs" / "crawl" / "github")]
IMAGES_SH = REPO / "scripts" / "images.sh"
VERSION = os.environ.get("SEEDCODER_IMAGE_VERSION", "0.1.0")
IMAGE = {name: f"localhost/seedcoder/{name}:{VERSION}" for name in ("airflow", "spark", "gpu")}
SCORER_VERSION, RELEASE_NAME = "v1", "smoke"


def chain(snapshot: str) -> list[tuple[str, dict | None]]:
    """Pass 1, in the order a deployment's users and Assets run it: (DAG, manual conf or None: asset-triggered by
    its upstream's latest event). The data DAGs on the snapshot, a scorer version trained by hand, the snapshot
    scored with it, a release cut by hand from the snapshot, its dataset and its pretraining."""
    return [("crawl", {"snapshot": snapshot}), ("dedup", None), ("filters", None),
            ("scorer", {"scorer": SCORER_VERSION, "snapshot": snapshot}), ("quality", None),
            ("release", {"release": RELEASE_NAME, "snapshots": [snapshot]}), ("dataset", None), ("pretrain", None)]
RELEASE = "seedcoder"
SECRETS_IN_CHART = {"github": "github-token", "lake": "lake-s3"}
CLAIMS = {"models": "seedcoder-models", "eval_sets": "seedcoder-eval-sets"}
SPARK_PROPERTIES = "/opt/spark/conf/spark.properties"
DRIVER_MEMORY_CAP_MB = 2048  # this machine's share: the k8s profile asks 8g per driver


def say(message: str) -> None:
    print(f"[smoke {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def buildah(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(IMAGES_SH), "buildah", *args], check=check, text=True, **kw)


# -- the smoke's stand-in for the cluster ------------------------------------------------------------------------
@dataclass
class Cluster:
    """What the pods of the smoke can reference: Secrets, volume claims, ConfigMaps, Services; and the mounts every
    container gets (the lake directory of pass 1, the fake GitHub's repositories)."""

    secrets: dict[str, dict[str, str]]
    claims: dict[str, Path]
    config_maps: dict[str, Path]
    shared_mounts: list[Path]
    work: Path
    services: set[str] = field(default_factory=set)

    def secret_value(self, name: str, key: str) -> str:
        if name not in self.secrets or key not in self.secrets[name]:
            raise KeyError(f"Secret {name!r} has no key {key!r} (the smoke's Secrets: {sorted(self.secrets)})")
        return self.secrets[name][key]

    def volume_source(self, volume: dict, scratch: Path) -> Path:
        if "configMap" in volume:
            return self.config_maps[volume["configMap"]["name"]]
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            if claim not in self.claims:
                raise KeyError(f"volume claim {claim!r} does not exist (the smoke's claims: {sorted(self.claims)})")
            return self.claims[claim]
        if "emptyDir" in volume:
            path = scratch / volume["name"]
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
            return path
        raise ValueError(f"volume {volume['name']}: only configMap, persistentVolumeClaim and emptyDir are known here")


@dataclass
class ContainerRun:
    image: str
    command: list[str]
    env: dict[str, str]
    mounts: list[tuple[Path, str, bool]]   # host path, container path, read-only
    workdir: str | None = None
    hostname: str | None = None
    hosts: dict[str, str] = field(default_factory=dict)


class ImageRunner:
    """Runs each launch of the DAGs' tasks in its image (the callback of harness.ClusterStandIn)."""

    def __init__(self, cluster: Cluster, logs: Path):
        self.cluster = cluster
        self.logs = logs
        self.rows: list[dict] = []

    def __call__(self, launched) -> dict:
        handler = {"pod": self.run_pod, "spark": self.run_spark, "job": self.run_job, "service": self.add_service}
        return handler[launched.kind](launched)

    # -- launches ---------------------------------------------------------------------------------------------
    def add_service(self, launched) -> dict:
        meta = launched.spec["metadata"]
        self.cluster.services.add(f"{meta['name']}.{meta['namespace']}")
        say(f"service {meta['name']}.{meta['namespace']} (headless) created")
        return {"service": meta["name"]}

    def run_pod(self, launched) -> dict:
        spec = launched.spec["spec"]
        run = self.container_of(spec, spec["containers"][0], self.scratch(launched.task_id))
        return self.execute(launched, run)

    def run_job(self, launched) -> dict:
        job = launched.spec
        pod = job["spec"]["template"]["spec"]
        name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
        subdomain = pod.get("subdomain")
        completions = job["spec"].get("completions") or 1
        runs = []
        for index in range(completions):
            run = self.container_of(pod, pod["containers"][0], self.scratch(f"{launched.task_id}-{index}"))
            run.env["JOB_COMPLETION_INDEX"] = str(index)
            run.hostname = f"{name}-{index}"
            if subdomain and f"{subdomain}.{namespace}" in self.cluster.services:
                for peer in range(completions):
                    run.hosts[f"{name}-{peer}.{subdomain}.{namespace}.svc"] = "127.0.0.1"
            runs.append(run)
        if len(runs) == 1:
            return self.execute(launched, runs[0])
        results = [None] * len(runs)
        threads = [threading.Thread(target=lambda i=i, r=r: results.__setitem__(
            i, self.execute(launched, r, suffix=f"-{i}"))) for i, r in enumerate(runs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {"pods": results}

    def run_spark(self, launched) -> dict:
        """The driver pod Spark on Kubernetes would start for this spark-submit command."""
        command = launched.spec
        conf, options, app, app_args = parse_spark_submit(command)
        if not options.get("--master", "").startswith("k8s://") or options.get("--deploy-mode") != "cluster":
            raise ValueError(f"{launched.task_id}: not a cluster-mode submission to Kubernetes: {command}")
        scratch = self.scratch(launched.task_id)
        properties = {**conf, "spark.master": "local[2]", "spark.app.name": options["--name"],
                      "spark.submit.deployMode": "client", "spark.submit.pyFiles": "",
                      "spark.executor.memory": options.get("--executor-memory", "1g"),
                      "spark.driver.memory": f"{min(memory_mb(options.get('--driver-memory', '1g')), DRIVER_MEMORY_CAP_MB)}m"}
        props = scratch / "spark.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in sorted(properties.items())))
        env = {k.removeprefix("spark.kubernetes.driverEnv."): v for k, v in conf.items()
               if k.startswith("spark.kubernetes.driverEnv.")}
        for key, ref in conf.items():
            if key.startswith("spark.kubernetes.driver.secretKeyRef."):
                secret, _, secret_key = ref.partition(":")
                env[key.removeprefix("spark.kubernetes.driver.secretKeyRef.")] = \
                    self.cluster.secret_value(secret, secret_key)
        env["SPARK_DRIVER_BIND_ADDRESS"] = "127.0.0.1"
        mounts = [(props, SPARK_PROPERTIES, True)]
        if template := conf.get("spark.kubernetes.driver.podTemplateFile"):
            pod = yaml.safe_load(Path(template).read_text())["spec"]
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            for mount in pod["containers"][0].get("volumeMounts", []):
                mounts.append((self.cluster.volume_source(volumes[mount["name"]], scratch), mount["mountPath"],
                               bool(mount.get("readOnly"))))
        prefix = "spark.kubernetes.driver.volumes.persistentVolumeClaim."
        for name in sorted({k[len(prefix):].split(".")[0] for k in conf if k.startswith(prefix)}):
            claim = {"persistentVolumeClaim": {"claimName": conf[f"{prefix}{name}.options.claimName"]}, "name": name}
            mounts.append((self.cluster.volume_source(claim, scratch), conf[f"{prefix}{name}.mount.path"],
                           conf.get(f"{prefix}{name}.mount.readOnly") == "true"))
        resource = app.removeprefix("local://")
        run = ContainerRun(conf["spark.kubernetes.container.image"],
                           ["/opt/entrypoint.sh", "driver", "--properties-file", SPARK_PROPERTIES, "--class",
                            "org.apache.spark.deploy.PythonRunner", resource, *app_args], env, mounts)
        return self.execute(launched, run)

    # -- pods -------------------------------------------------------------------------------------------------
    def container_of(self, pod: dict, container: dict, scratch: Path) -> ContainerRun:
        env = {}
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
            elif "secretKeyRef" in (var.get("valueFrom") or {}):
                ref = var["valueFrom"]["secretKeyRef"]
                env[var["name"]] = self.cluster.secret_value(ref["name"], ref["key"])
            else:
                raise ValueError(f"env {var['name']}: only values and secretKeyRefs are known here")
        for source in container.get("envFrom") or []:
            name = source["secretRef"]["name"]
            if name not in self.cluster.secrets:
                raise KeyError(f"envFrom Secret {name!r} does not exist")
            env.update(self.cluster.secrets[name])
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        mounts = [(self.cluster.volume_source(volumes[m["name"]], scratch), m["mountPath"], bool(m.get("readOnly")))
                  for m in container.get("volumeMounts") or [] if m["mountPath"] != "/dev/shm"]
        command = [*(container.get("command") or []), *(container.get("args") or [])]
        if not command:
            raise ValueError("the pod's container has no command (the smoke runs what the pod runs, not the image's)")
        return ContainerRun(container["image"], command, env, mounts, container.get("workingDir"))

    def scratch(self, name: str) -> Path:
        path = self.cluster.work / "pods" / f"{name}-{uuid.uuid4().hex[:6]}"
        path.mkdir(parents=True)
        path.chmod(0o777)
        return path

    def execute(self, launched, run: ContainerRun, suffix: str = "") -> dict:
        name = f"smoke-{launched.task_id.replace('_', '-')}{suffix}-{uuid.uuid4().hex[:6]}"
        log = self.logs / f"{launched.dag_id or 'service'}.{launched.task_id}{suffix}.log"
        hostname = run.hostname or name
        create = ["from", "--name", name]
        # The pod's own name resolves, as the kubelet's /etc/hosts makes it (the JVM looks it up at start).
        for host, ip in {hostname: "127.0.0.1", **run.hosts}.items():
            create += ["--add-host", f"{host}:{ip}"]
        buildah(*create, run.image, stdout=subprocess.DEVNULL)
        args = ["run", "--isolation", "chroot", "--network", "host", "--hostname", hostname]
        if run.workdir:
            args += ["--workingdir", run.workdir]
        for host_path in self.cluster.shared_mounts:
            args += ["-v", f"{host_path}:{host_path}"]
        for host_path, path, read_only in run.mounts:
            args += ["-v", f"{host_path}:{path}{':ro' if read_only else ''}"]
        for key, value in run.env.items():
            args += ["-e", f"{key}={value}"]
        say(f"{launched.dag_id}.{launched.task_id}{suffix}: {run.image} $ {' '.join(run.command)[:160]}")
        start = time.monotonic()
        try:
            with log.open("w") as out:
                out.write(f"# image {run.image}\n# command {json.dumps(run.command)}\n"
                          f"# env {json.dumps(sorted(run.env))}\n# mounts {json.dumps([str(m) for m in run.mounts])}\n")
                out.flush()
                proc = subprocess.run([str(IMAGES_SH), "buildah", *args, name, "--", *run.command], stdout=out,
                                      stderr=subprocess.STDOUT)
        finally:
            buildah("rm", name, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            open_permissions(self.cluster.shared_mounts)
        seconds = round(time.monotonic() - start, 1)
        result = {"task": f"{launched.dag_id}.{launched.task_id}{suffix}", "image": run.image, "rc": proc.returncode,
                  "seconds": seconds, "log": str(log)}
        self.rows.append(result)
        if proc.returncode != 0:
            tail = log.read_text(errors="replace").splitlines()[-40:]
            raise RuntimeError(f"{result['task']} exited {proc.returncode} in {run.image} after {seconds}s; "
                               f"log {log}:\n" + "\n".join(tail))
        say(f"{result['task']}: done in {seconds}s")
        return result


def open_permissions(paths: list[Path]) -> None:
    """The containers run as three uids (185, 1000, 50000): the shared directory is writable by all, as an
    fsGroup volume would be."""
    for path in paths:
        subprocess.run(["chmod", "-R", "a+rwX", str(path)], check=False)


def parse_spark_submit(command: list[str]) -> tuple[dict[str, str], dict[str, str], str, list[str]]:
    """(conf, other options, application, application arguments) of a spark-submit argv.

    >>> parse_spark_submit(["spark-submit", "--master", "k8s://x", "--conf", "a=b=c", "--name", "n", "app.py", "-v"])
    ({'a': 'b=c'}, {'--master': 'k8s://x', '--name': 'n'}, 'app.py', ['-v'])
    """
    conf, options, i = {}, {}, 1
    while i < len(command) and command[i].startswith("--"):
        if command[i] == "--conf":
            key, _, value = command[i + 1].partition("=")
            conf[key] = value
        else:
            options[command[i]] = command[i + 1]
        i += 2
    return conf, options, command[i], command[i + 1:]


def memory_mb(value: str) -> int:
    """Megabytes of a Spark memory setting.

    >>> memory_mb("8g"), memory_mb("512m")
    (8192, 512)
    """
    units = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
    return int(float(value[:-1]) * units[value[-1].lower()]) if value[-1].lower() in units else int(value) // 2**20


# -- the world the smoke crawls -------------------------------------------------------------------------------
WORLD_PACKAGES = {  # repository -> (stdlib packages, stars)
    "py/jsonkit": (["json"], 500), "py/mailer": (["email"], 300), "py/httpkit": (["http", "urllib"], 200),
    "py/xmlkit": (["xml"], 150), "py/logkit": (["logging"], 90), "py/asynckit": (["asyncio"], 400),
    "py/testkit": (["unittest"], 120), "copy/jsonkit": (["json"], 20),
}


def build_world(fake, root: Path, month: str, clone_base: str) -> None:
    """Repositories of real code (the standard library), each with three commits in ``month``, cloned from
    ``clone_base`` (static HTTP); GH Archive hours of the month, every hour present, two pushes per repository."""
    from dataclasses import dataclass as _dataclass

    from fake_github import FakeRepo, git, make_repo, push_event

    @_dataclass
    class ServedRepo(FakeRepo):
        def meta(self, base: str) -> dict:
            return {**super().meta(base), "clone_url": f"{clone_base}/{self.git_dir.name}/.git"}

    from spark_jobs.crawl.github.gharchive import hour_names
    from spark_jobs.crawl.github.stage import snapshot_period

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name, (packages, stars) in WORLD_PACKAGES.items():
        files = {}
        for package in packages:
            for path in sorted((stdlib / package).rglob("*.py")):
                if "__pycache__" not in path.parts and "test" not in path.parts:
                    files[str(path.relative_to(stdlib))] = path.read_bytes()
        keys = sorted(files)
        thirds = [keys[i::3] for i in range(3)]
        history = [(f"{month}-{day:02d}T10:00:00Z", {k: files[k] for k in part}, f"Add part {n + 1}")
                   for n, (day, part) in enumerate(zip((3, 12, 21), thirds, strict=True))]
        git_dir = make_repo(root / name.replace("/", "__"), history)
        git(git_dir, "update-server-info")  # the index files git's dumb HTTP protocol reads
        fake.add_repo(ServedRepo(name, git_dir, stars=stars, forks=5, license="MIT",
                                 created_at="2025-01-01T00:00:00Z", pushed_at=f"{month}-21T10:00:00Z"))
    period = snapshot_period(month)
    pushes = {f"{month}-15-3": [push_event(n, f"{month}-15T03:00:00Z") for n in WORLD_PACKAGES],
              f"{month}-22-9": [push_event(n, f"{month}-22T09:00:00Z") for n in WORLD_PACKAGES]}
    for hour in hour_names(period.start, period.end):
        fake.add_hour(hour, pushes.get(hour, []))


@contextlib.contextmanager
def git_over_http(root: Path):
    """The world's repositories over HTTP on loopback (git's dumb protocol: a static server; the crawl clones
    commits over the network as from GitHub, and accepts only http(s) clone URLs from an API answer)."""
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- configuration: the chart's values and the platform configuration it carries ------------------------------
def smoke_config(fake_url: str) -> str:
    """config/k8s.yaml with the sizes of a small snapshot on one CPU machine, as the chart's platformConfig."""
    cfg = yaml.safe_load((REPO / "config" / "k8s.yaml").read_text())
    stages = cfg["stages"]
    cfg["spark"].update(shuffle_partitions=4, driver_memory="2g")
    stages["crawl"]["github"].update(
        api={"base_url": f"{fake_url}/api", "max_concurrency": 4}, gharchive_url=f"{fake_url}/gharchive",
        discovery_partitions=4, fetch_partitions=4,
        selection={"min_push_events": 2, "min_stars": 10, "commits_min_stars": 10, "commits_min_forks": 0,
                   "commits_min_commits": 2, "commits_min_days_active": 0})
    stages["crawl"]["output_partitions"] = 2
    stages["near_dedup"]["output_partitions"] = 4
    # No LLM here: the rule teacher (its labels are named rules:...). The oracle Deployment is checked by the
    # chart tests (vLLM's own parser); the OpenAI oracle path by training/quality's tests.
    stages["oracle_label"] = {"input": "pii_redact", "sample_size": 300, "seed": 0, "oracle": "rules",
                              "shard_size": 100}
    stages["train_scorer"].update(base_model="/models/tiny-base", max_tokens=256, batch_size=8,
                                  learning_rate=3.0e-4, warmup_steps=5, test_fraction=0.1, log_every=5)
    stages["score"].update(scorer_version=SCORER_VERSION, max_tokens=256, shard_rows=256, dtype="float32", gpu_memory_utilization=0.1)
    stages["release"]["output_partitions"] = 2
    stages["tokenizer"].update(vocab_size=4096, sample_fraction=1.0, max_training_bytes=50_000_000)
    stages["dataset_build"].update(seq_len={"file_level": 512, "repo_level": 1024, "commits": 1024}, parts=2,
                                   shard_tokens=262_144)
    stages["pretrain"].update(
        preset="tiny", attn_implementation="sdpa", bf16=False, activation_checkpointing=False, micro_batch_size=2,
        grad_accum_steps=1, warmup_steps=2, checkpoint_every=4, keep_checkpoints=2, log_every=2, threads=2,
        export_dtype="float32", optimizer={"fused": False},
        phases=[{"name": "regular", "steps": 6, "lr": 3.0e-4, "mixture": {"file_level": 1.0}},
                {"name": "continued", "steps": 2, "lr": 3.0e-5, "mixture": {"file_level": 1.0}}],
        k8s={"nodes": 1, "gpus_per_node": 1, "cpu": "2", "memory": "8Gi", "shm_size": "1Gi",
             "ephemeral_storage": "10Gi", "node_selector": {}, "tolerations": []})
    return yaml.safe_dump(cfg, sort_keys=False)


def chart_values(platform_config: str, *, s3_endpoint: str = "") -> dict:
    return {
        "images": {name: {"repository": ref.rsplit(":", 1)[0], "tag": VERSION} for name, ref in IMAGE.items()},
        "airflow": {"database": {"existingSecret": "airflow-db"}, "existingSecret": "airflow-keys"},
        "stages": {"github": {"existingSecret": SECRETS_IN_CHART["github"]},
                   "models": {"existingClaim": CLAIMS["models"]}, "evalSets": {"existingClaim": CLAIMS["eval_sets"]}},
        "lake": {"root": "s3://seedcoder-lake/smoke", "s3Endpoint": s3_endpoint,
                 "credentialsSecret": SECRETS_IN_CHART["lake"] if s3_endpoint else ""},
        "platformConfig": platform_config,
    }


def render_chart(values: dict, out: Path) -> list[dict]:
    from tests.helm.chart_tools import CHART, extract_helm, run_helm

    proc = run_helm(extract_helm(), "template", RELEASE, str(CHART), "--namespace", "seedcoder", values=values)
    if proc.returncode != 0:
        raise RuntimeError(f"helm template failed:\n{proc.stderr}")
    out.write_text(proc.stdout)
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def apply_chart(objects: list[dict], cluster: Cluster, config_dir: Path) -> dict[str, str]:
    """Become an Airflow pod of the chart: its ConfigMap's files in ``config_dir`` (its mount), the scheduler's
    environment in os.environ (Secrets resolved; Airflow's own settings stay the smoke's SQLite ones)."""
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap"]
    for key, text in config_map["data"].items():
        (config_dir / key).write_text(text + "\n")
    cluster.config_maps[config_map["metadata"]["name"]] = config_dir
    scheduler = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-scheduler"))
    applied = {}
    for var in scheduler["spec"]["template"]["spec"]["containers"][0]["env"]:
        name = var["name"]
        if name.startswith("AIRFLOW__"):
            continue
        if "value" in var:
            value = var["value"]
            if value.startswith("/etc/seedcoder/"):
                value = str(config_dir / value.removeprefix("/etc/seedcoder/"))
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            value = cluster.secret_value(ref["name"], ref["key"])
        os.environ[name] = applied[name] = value
    return applied


# -- the runs -------------------------------------------------------------------------------------------------
def run_chain(harness, stand_in, steps: list[tuple[str, dict | None]], *,
              mark_success: str | None = None) -> list[dict]:
    """Each step's DAG by a manual run with its conf, or (conf None) by its upstream's latest Asset event."""
    results = []
    for dag_id, conf in steps:
        start = time.monotonic()
        dag = harness.dagbag().dags[dag_id]
        say(f"==> DAG {dag_id}" + (f" (manual run, conf {json.dumps(conf)})" if conf is not None
                                   else " (triggered by the Asset event)"))
        with stand_in.patched():
            if conf is not None:
                run = harness.run_dag(dag_id, conf=conf, mark_success_pattern=mark_success, retries=0)
            else:
                run = harness.run_dag(dag_id, asset_events=harness.latest_asset_events(dag),
                                      mark_success_pattern=mark_success, retries=0)
        state = harness.run_state(run)
        results.append({"dag": dag_id, "run_type": str(run.run_type).rsplit(".", 1)[-1], "state": state,
                        "seconds": round(time.monotonic() - start, 1)})
        say(f"<== DAG {dag_id}: {state} ({results[-1]['run_type']}) in {results[-1]['seconds']}s")
        if state != "success":
            raise SystemExit(f"DAG {dag_id} ended {state}: see the task logs above and {stand_in.run.logs}")
    return results


def committed_table(snapshot: str, title: str) -> list[str]:
    """The committed stages of the snapshot, the scorer version and the release."""
    from lake.config import load_config
    from lake.stage import Partition

    lake = load_config().open_lake()
    lines = [f"{title}: lake {lake.root}, snapshot {snapshot}, scorer {SCORER_VERSION}, release {RELEASE_NAME}",
             f"  {'stage':<15} {'attempt':>7} {'in':>7} {'out':>7} {'seconds':>8}  drops"]
    commits = [*lake.committed_stages(snapshot), *lake.committed_stages(Partition("scorer", SCORER_VERSION)),
               *lake.committed_stages(Partition("release", RELEASE_NAME))]
    for commit in commits:
        s = commit.stats
        drops = ", ".join(f"{k}={v}" for k, v in s["drop_reasons"].items() if v) or "-"
        lines.append(f"  {commit.stage:<15} {commit.attempt:>7} {s['records_in']:>7,} {s['records_out']:>7,} "
                     f"{s['seconds']:>8.1f}  {drops[:90]}")
    return lines


def copy_lake(src_root: Path, dst_root: str, endpoint: str) -> int:
    """The committed data of pass 1 into the S3 lake (pointers last, as a commit writes them)."""
    from lake.storage import open_storage

    src, dst = open_storage(str(src_root)), open_storage(dst_root, endpoint_url=endpoint)
    keys = [k for k in src.list("") if not k.startswith("_cache/")]
    for key in sorted(keys, key=lambda k: k.endswith("/_SUCCESS")):
        dst.write_bytes(key, src.read_bytes(key))
    return len(keys)


def run_in_image(image: str, command: list[str], *, mounts: list[tuple[Path, str, bool]], env: dict[str, str],
                 log: Path, what: str) -> float:
    name = f"smoke-{what}-{uuid.uuid4().hex[:6]}"
    buildah("from", "--name", name, "--add-host", f"{name}:127.0.0.1", image, stdout=subprocess.DEVNULL)
    args = ["run", "--isolation", "chroot", "--network", "host", "--hostname", name]
    for host_path, path, read_only in mounts:
        args += ["-v", f"{host_path}:{path}{':ro' if read_only else ''}"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    start = time.monotonic()
    try:
        with log.open("w") as out:
            proc = subprocess.run([str(IMAGES_SH), "buildah", *args, name, "--", *command], stdout=out,
                                  stderr=subprocess.STDOUT)
    finally:
        buildah("rm", name, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed in {image} (exit {proc.returncode}); log {log}:\n"
                         + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
    return round(time.monotonic() - start, 1)


def check_airflow_image(env: dict[str, str], log: Path) -> float:
    """The Airflow image parses the DAGs as its dag-processor does (bundle path), on the k8s profile, with the
    chart's settings: no import errors, and every stage task is a k8s operator."""
    code = """
from airflow.dag_processing.dagbag import BundleDagBag
bag = BundleDagBag(dag_folder="/opt/seedcoder/dags", bundle_path="/opt/seedcoder/dags", bundle_name="dags-folder")
assert not bag.import_errors, bag.import_errors
kinds = sorted({type(t).__name__ for d in bag.dags.values() for t in d.tasks})
assert "LocalStageOperator" not in kinds, kinds
print("DAGs", sorted(bag.dag_ids), "operators", kinds)
"""
    chart_env = {k: v for k, v in env.items() if k in ("AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER",
                                                        "AIRFLOW__CORE__LOAD_EXAMPLES", "SEEDCODER_PROFILE")}
    return run_in_image(IMAGE["airflow"], ["bash", "-c", f"airflow version && spark-submit --version 2>&1 | "
                                           f"grep -m1 'version' && python -c '{code}'"],
                        mounts=[], env=chart_env, log=log, what="airflow-image")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=REPO / ".work" / "smoke", help="work directory (emptied first)")
    parser.add_argument("--snapshot", default=None, help="the month crawled (default: the last complete month)")
    parser.add_argument("--s3-port", type=int, default=int(os.environ.get("SEEDCODER_S3_PORT", "8473")))
    parser.add_argument("--skip-s3", action="store_true", help="pass 1 only")
    parser.add_argument("--mbpp", type=Path, default=Path("/work/shared/data/mbpp/mbpp.jsonl"),
                        help="MBPP's mbpp.jsonl, put on the eval-sets claim (where a deployment's further sets live; "
                             "config/k8s.yaml indexes MBPP from the image since #14)")
    args = parser.parse_args(argv)
    if not args.mbpp.is_file():
        raise SystemExit(f"--mbpp {args.mbpp} does not exist: the k8s profile decontaminates against MBPP")
    now = datetime.now(UTC)
    snapshot = args.snapshot or (f"{now.year - 1}-12" if now.month == 1 else f"{now.year}-{now.month - 1:02d}")
    for image in IMAGE.values():
        if buildah("inspect", "--type", "image", image, check=False, capture_output=True).returncode != 0:
            raise SystemExit(f"image {image} is missing: run scripts/images.sh build")

    work = args.work.resolve()
    if work.exists():
        subprocess.run(["chmod", "-R", "u+rwX", str(work)], check=False)
        shutil.rmtree(work)
    dirs = {name: work / name for name in ("lake", "world", "models", "eval-sets", "configmap", "logs", "pods",
                                           "airflow")}
    for path in dirs.values():
        path.mkdir(parents=True)
    os.environ["SEEDCODER_PROFILE"] = "k8s"
    from tests.k8s import harness

    harness.configure_airflow(dirs["airflow"])
    report = {"snapshot": snapshot, "started": now.isoformat(timespec="seconds"), "images": IMAGE, "steps": []}
    t0 = time.monotonic()

    from fake_github import FakeGitHub

    with FakeGitHub(token=f"smoke-{uuid.uuid4().hex[:12]}") as fake, git_over_http(dirs["world"]) as clone_base:
        build_world(fake, dirs["world"], snapshot, clone_base)
        say(f"fake GitHub on {fake.url} ({len(fake.repos)} repositories, month {snapshot}; it requires the token), "
            f"clones from {clone_base}")
        cluster = Cluster(
            secrets={SECRETS_IN_CHART["github"]: {"GITHUB_TOKEN": fake.token},
                     SECRETS_IN_CHART["lake"]: {"AWS_ACCESS_KEY_ID": os.environ.get("SEEDCODER_S3_ACCESS_KEY", "seedcoder"),
                                                "AWS_SECRET_ACCESS_KEY": os.environ.get("SEEDCODER_S3_SECRET_KEY",
                                                                                        "seedcoder-secret")}},
            claims={CLAIMS["models"]: dirs["models"], CLAIMS["eval_sets"]: dirs["eval-sets"]},
            config_maps={}, shared_mounts=[dirs["lake"]], work=work)
        open_permissions([work])

        # The Airflow pods' view: the chart rendered with the smoke's values.
        platform_config = smoke_config(fake.url)
        env = apply_chart(render_chart(chart_values(platform_config), work / "chart-pass1.yaml"), cluster,
                          dirs["configmap"])
        os.environ["SEEDCODER_LAKE_ROOT"] = str(dirs["lake"])  # pass 1: the lake is the bound directory
        seconds = check_airflow_image({**env, "AIRFLOW__CORE__DAGS_FOLDER": "/opt/seedcoder/dags",
                                       "AIRFLOW__CORE__PLUGINS_FOLDER": "/opt/seedcoder/plugins",
                                       "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}, dirs["logs"] / "airflow-image.log")
        report["steps"].append({"step": "airflow image parses the DAGs (k8s profile)", "seconds": seconds})
        say(f"airflow image: DAGs parse into k8s operators ({seconds}s)")

        # What an operator provisions on the claims: the scorer's base checkpoint (built in the GPU image, as
        # nothing can be downloaded) and the evaluation sets.
        seconds = run_in_image(IMAGE["gpu"], ["python", "-m", "training.quality.tiny_base", "--out",
                                              "/models/tiny-base"],
                               mounts=[(dirs["models"], "/models", False)], env={}, log=dirs["logs"] / "models.log",
                               what="models")
        report["steps"].append({"step": "models claim: tiny base built in the gpu image", "seconds": seconds})
        shutil.copy(args.mbpp, dirs["eval-sets"] / "mbpp.jsonl")
        open_permissions([work])

        harness.migrate()
        runner = ImageRunner(cluster, dirs["logs"])
        stand_in = harness.ClusterStandIn(run=runner)
        say(f"pass 1: the chain on the lake directory {dirs['lake']}")
        report["pass1"] = run_chain(harness, stand_in, chain(snapshot))
        table = committed_table(snapshot, "pass 1 (lake on a bound directory)")

        if not args.skip_s3:
            services = {**os.environ, "SEEDCODER_S3_PORT": str(args.s3_port),
                        "SEEDCODER_SERVICES_DIR": str(work / "services")}
            subprocess.run([str(REPO / "scripts" / "services.sh"), "start", "s3"], env=services, check=True)
            try:
                endpoint = f"http://127.0.0.1:{args.s3_port}"
                env = apply_chart(render_chart(chart_values(platform_config, s3_endpoint=endpoint),
                                               work / "chart-pass2.yaml"), cluster, dirs["configmap"])
                say(f"pass 2: lake {env['SEEDCODER_LAKE_ROOT']} at {endpoint}")
                copied = copy_lake(dirs["lake"], env["SEEDCODER_LAKE_ROOT"], endpoint)
                say(f"copied {copied} objects of pass 1's commits to the S3 lake")
                # A new scorer version on S3, the snapshot scored again; dataset_build is a Spark stage (no s3a
                # here): its pass-1 commit stays, the tokenizer runs again.
                report["pass2"] = run_chain(harness, stand_in,
                                            [("scorer", {"scorer": "v2", "snapshot": snapshot}), ("quality", None),
                                             ("dataset", None), ("pretrain", None)], mark_success="dataset_build")
                table += committed_table(snapshot, "pass 2 (lake on S3; Spark stages' commits copied from pass 1)")
            finally:
                subprocess.run([str(REPO / "scripts" / "services.sh"), "stop", "s3"], env=services, check=False)

    report["containers"] = runner.rows
    report["seconds"] = round(time.monotonic() - t0, 1)
    (work / "report.json").write_text(json.dumps(report, indent=2))
    print()
    print(f"{'container':<34} {'image':<36} {'seconds':>8}")
    for row in runner.rows:
        print(f"{row['task']:<34} {row['image']:<36} {row['seconds']:>8.1f}")
    print()
    print("\n".join(table))
    print(f"\nsmoke passed in {report['seconds']:.0f}s; report {work / 'report.json'}, logs {dirs['logs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
