"""The rl DAG on the k8s profile, run by Airflow (``dag.test()``) up to the cluster, triggered by a pretrain Asset
event as the scheduler would: the warm-up and every round are Indexed Jobs shaped by ``stages.rl.k8s`` running
``torchrun -m training.rl`` on the run's own partition ``{release}.rl``, the curricula and the final evaluation
one-GPU pods, and every one of them is told where the sandbox service is. Templates are rendered by Airflow from the
run (tests/k8s/harness.py replaces only the provider operators' cluster calls)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

pytestmark = [pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.37.0"
SANDBOX = "http://seedcoder-sandbox.seedcoder.svc:8080"


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("k8s_rl")
    cfg = yaml.safe_load((REPO / "config" / "k8s.yaml").read_text())
    cfg["stages"]["rl"]["k8s"].update(nodes=3, gpus_per_node=2)
    config = root / "k8s.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SEEDCODER_"))}
    env.update(SEEDCODER_PROFILE="k8s", SEEDCODER_CONFIG=str(config), SEEDCODER_SANDBOX_URL=SANDBOX,
               SEEDCODER_LAKE_ROOT="s3://corp-lake/seedcoder", SEEDCODER_RL_ROUNDS="2")
    out = root / "launched.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.k8s.harness", "--home", str(root / "airflow"), "--mark-success", "publish_.*",
         "--run", 'rl@seedcoder://lake/pretrain:{"release": "2026-q3"}', "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(out.read_text())


def launches(result: dict, kind: str) -> dict[str, object]:
    return {item["task_id"]: item["spec"] for item in result["launched"] if item["kind"] == kind}


def worker_argv(job: dict, tmp_path: Path, index: int) -> list[str]:
    """What the Job's pod ``index`` hands torchrun (a stand-in that prints its arguments)."""
    fake = tmp_path / "torchrun"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    name = job["metadata"]["name"]
    return subprocess.run(["/bin/bash", "-c", container["args"][0]], capture_output=True, text=True, check=True,
                          env={**env, "PATH": f"{tmp_path}:{os.environ['PATH']}", "HOSTNAME": f"{name}-{index}",
                               "JOB_COMPLETION_INDEX": str(index)}).stdout.splitlines()


def test_the_run_was_asset_triggered_and_launched_every_step_in_order(launched):
    assert launched["runs"] == [{"dag": "rl", "state": "success", "run_type": "asset_triggered"}]
    order = [item["task_id"] for item in launched["launched"]]
    assert order == ["seedcoder-rl-warmup-workers", "rl_warmup", "rl_curriculum_1", "seedcoder-rl-round-1-workers",
                     "rl_round_1", "rl_curriculum_2", "seedcoder-rl-round-2-workers", "rl_round_2", "evaluate"]


def test_the_warmup_and_rounds_are_jobs_shaped_by_the_rl_section(launched, tmp_path):
    jobs, services = launches(launched, "job"), launches(launched, "service")
    assert set(jobs) == {"rl_warmup", "rl_round_1", "rl_round_2"}
    for task_id, job in jobs.items():
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
        service = services[f"seedcoder-{task_id.replace('_', '-')}-workers"]
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)
        assert job["spec"]["template"]["spec"]["subdomain"] == service["metadata"]["name"]
        assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (3, 3), "stages.rl.k8s.nodes"
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["SEEDCODER_PARTITION_IDS"] == "2026-q3.rl"
        assert env["SEEDCODER_SANDBOX_URL"] == SANDBOX
        argv = worker_argv(job, tmp_path, 2)
        assert "--node_rank=2" in argv and "--nnodes=3" in argv and "--nproc_per_node=2" in argv
        assert argv[argv.index("-m") + 1: argv.index("-m") + 4] == ["training.rl", "--release", "2026-q3.rl"]
    warmup = worker_argv(jobs["rl_warmup"], tmp_path, 0)
    assert warmup[warmup.index("2026-q3.rl") + 1:] == [
        "warmup", "--set=stages.rl.model.release=2026-q3", "--model=", "--tasks="]
    for k in (1, 2):
        argv = worker_argv(jobs[f"rl_round_{k}"], tmp_path, 0)
        assert argv[argv.index("2026-q3.rl") + 1:] == ["grpo", "--round", str(k)]


def test_the_curricula_and_the_evaluation_are_one_gpu_pods_on_the_rl_partition(launched):
    pods = launches(launched, "pod")
    assert set(pods) == {"rl_curriculum_1", "rl_curriculum_2", "evaluate"}
    for pod in pods.values():
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        (container,) = pod["spec"]["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert {e["name"]: e.get("value") for e in container["env"]}["SEEDCODER_SANDBOX_URL"] == SANDBOX
    args = {task_id: pod["spec"]["containers"][0]["args"] for task_id, pod in pods.items()}
    assert args["rl_curriculum_1"] == ["--release", "2026-q3.rl", "curriculum", "--round", "1"]
    assert args["rl_curriculum_2"] == ["--release", "2026-q3.rl", "curriculum", "--round", "2"]
    assert pods["evaluate"]["spec"]["containers"][0]["command"] == ["python", "-m", "training.evaluate"]
    assert args["evaluate"] == ["--release", "2026-q3.rl", "--set", "stages.evaluate.model_stage=rl_round_2",
                                "--set", "stages.evaluate.bpb.release=2026-q3"]


def test_the_rl_section_of_the_k8s_profile_is_the_reports_recipe():
    from lake.config import load_config

    sys.path.insert(0, str(REPO))
    from training.rl.config import RLConfig

    rl = load_config(str(REPO / "config" / "k8s.yaml")).stage("rl", RLConfig)
    assert (rl.actor.clip_ratio_low, rl.actor.clip_ratio_high, rl.actor.loss_agg_mode) == (0.2, 0.28, "token-mean")
    assert rl.rollout.temperature == 0.6 and rl.actor.optim.lr == 1e-6 and not rl.actor.use_kl_loss
    assert rl.data.train_batch_size == 128 and rl.algorithm.overlong_filter
    assert [(r.steps, r.n, r.max_response_length) for r in map(rl.round, (1, 2))] == [(90, 16, 16384),
                                                                                     (160, 32, 32768)]
    assert rl.reward.sandbox_url.startswith("http://")
