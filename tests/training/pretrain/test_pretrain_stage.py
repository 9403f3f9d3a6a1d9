"""The pretrain stage end to end, as the DAG runs it: ``python -m training.pretrain`` under the DeepSpeed launcher
on CPU (gloo), on shards written by the real token-shard writer.

An uninterrupted run is the reference; a second run is SIGKILLed right after its first checkpoint and re-run,
and the resumed run must draw exactly the reference's loss curve (same data order, same optimizer state).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lake.stage import Lake, Partition
from tests.training.pretrain.pretrain_lake import REPO, build_shards, run_stage, stage_command, stage_env, write_config

pytest.importorskip("deepspeed")
pytestmark = [pytest.mark.gpu_env, pytest.mark.slow]

STEPS = 30


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pretrain-lake")
    lake = Lake.at(str(root))
    for snapshot in ("ref", "killed"):
        build_shards(lake, snapshot)
    return root


def section(**kw) -> dict:
    return {"phases": [{"name": "regular", "steps": STEPS, "lr": 3e-3}]} | kw


@pytest.fixture(scope="module")
def reference(lake_dir: Path, tmp_path_factory):
    """The uninterrupted run (one rank, no launcher: the numbers must not depend on how ranks start)."""
    tmp = tmp_path_factory.mktemp("ref")
    config = write_config(tmp / "cfg.yaml", lake_dir, tmp / "scratch", local={"launcher": "inline"}, **section())
    extensions = tmp / "torch_extensions"
    run_stage("ref", config, env={"TORCH_EXTENSIONS_DIR": str(extensions)})
    lake = Lake.at(str(lake_dir))
    return lake, lake.require(Partition.release("ref"), "pretrain"), extensions


def steps_of(lake: Lake, snapshot: str) -> list[dict]:
    from training.pretrain.train import read_step_log

    return read_step_log(lake, Partition.release(snapshot))


def test_a_cpu_run_builds_no_torch_extension(reference):
    """A JIT build (DeepSpeed's shm all-reduce op) costs a minute on a fresh machine, and one killed mid-build leaves
    a lock that hangs every later run: CI timed out that way. CPU training must not build anything."""
    extensions = reference[2]
    assert not extensions.exists() or not any(extensions.rglob("*")), sorted(extensions.rglob("*"))


def test_loss_falls_and_everything_is_committed(reference):
    lake, info, _ = reference
    records = steps_of(lake, "ref")
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    first, last = records[0]["loss"], records[-1]["loss"]
    assert last < 0.5 * first, (first, last)
    assert set(info.datasets) == {"checkpoints", "hf", "metrics", "tensorboard"}
    metrics = info.stats["metrics"]
    assert metrics["steps"] == STEPS and metrics["resumed_from_step"] == 0
    assert metrics["tokens_per_s"] > 0 and 0 < metrics["mfu"] < 1
    assert metrics["loss_last"] == last
    assert info.stats["records_in"] == STEPS * 4  # rows: steps x global batch
    # keep_checkpoints=2 of steps 10, 20, 30
    ckpts = {k.split("/")[-2] for k in info.datasets["checkpoints"]}
    assert ckpts == {"step-00000020", "step-00000030"}
    assert any(k.split("/")[-1].startswith("events.out.tfevents") for k in info.datasets["tensorboard"])


def wait_for(path_glob: str, root: Path, proc: subprocess.Popen, timeout: float = 300) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hits = sorted(root.glob(path_glob))
        if hits:
            return hits[0]
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {path_glob} appeared")
        time.sleep(0.2)
    raise AssertionError(f"{path_glob} did not appear within {timeout}s")


def kill_after_first_checkpoint(release: str, config: Path, lake_dir: Path) -> None:
    """Run the stage on ``release`` and SIGKILL its whole process group once step 10's checkpoint is complete."""
    proc = subprocess.Popen(stage_command(release, config), cwd=REPO, env=stage_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"release={release}/pretrain/attempt=*/checkpoints/step-00000010/trainer_state.json", lake_dir, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_kill_and_resume_reproduces_the_uninterrupted_curve(reference, lake_dir: Path, tmp_path: Path):
    lake, _, _ = reference
    config = write_config(tmp_path / "cfg.yaml", lake_dir, tmp_path / "scratch", **section())
    kill_after_first_checkpoint("killed", config, lake_dir)
    assert lake.commit_info(Partition.release("killed"), "pretrain") is None  # nothing committed by the killed run

    out = run_stage("killed", config)
    assert "resumed from" in out.stderr
    info = lake.require(Partition.release("killed"), "pretrain")
    resumed = info.stats["metrics"]["resumed_from_step"]
    assert 10 <= resumed < STEPS
    killed = steps_of(lake, "killed")
    ref = steps_of(lake, "ref")
    assert [r["step"] for r in killed] == list(range(1, STEPS + 1))  # no step lost or duplicated
    assert [r["loss"] for r in killed] == pytest.approx([r["loss"] for r in ref], rel=1e-6, abs=1e-7)
    assert info.stats["metrics"]["data_cursors"] == json.loads(json.dumps(
        lake.require(Partition.release("ref"), "pretrain").stats["metrics"]["data_cursors"]))


def test_the_torch_engine_follows_the_deepspeed_curve_and_resumes_after_a_kill(reference, lake_dir: Path,
                                                                                  tmp_path: Path):
    """The local profile trains with ``engine: torch`` (faster on one CPU rank, #21): under the DeepSpeed launcher,
    as the local profile starts it, SIGKILLed after its first checkpoint and re-run, it draws the DeepSpeed
    reference's curve (same data, weights and AdamW; only the engines' arithmetic order differs)."""
    lake, _, _ = reference
    build_shards(lake, "torch")
    config = write_config(tmp_path / "cfg.yaml", lake_dir, tmp_path / "scratch", engine="torch", **section())
    kill_after_first_checkpoint("torch", config, lake_dir)
    out = run_stage("torch", config)
    assert "resumed from" in out.stderr
    info = lake.require(Partition.release("torch"), "pretrain")
    assert info.stats["metrics"]["resumed_from_step"] >= 10
    assert {k.rsplit("/", 1)[-1] for k in info.datasets["checkpoints"]} >= {"torch_state.pt", "trainer_state.json"}
    steps = steps_of(lake, "torch")
    assert [r["step"] for r in steps] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in steps] == pytest.approx([r["loss"] for r in steps_of(lake, "ref")], rel=1e-3)


def test_two_ranks_split_the_global_batch_and_follow_the_one_rank_curve(reference, lake_dir: Path, tmp_path: Path):
    """ZeRO-2 over gloo with 2 ranks x micro batch 2 sees the same rows per step as 1 rank x 4."""
    lake, _, _ = reference
    build_shards(lake, "two")
    config = write_config(tmp_path / "cfg.yaml", lake_dir, tmp_path / "scratch", micro_batch_size=2,
                          local={"processes": 2}, **section(phases=[{"name": "regular", "steps": 10, "lr": 3e-3}]))
    run_stage("two", config)
    info = lake.require(Partition.release("two"), "pretrain")
    assert info.stats["metrics"]["world_size"] == 2 and info.stats["metrics"]["global_batch"] == 4
    # each rank wrote its own optimizer shard into the checkpoint
    names = {k.rsplit("/", 1)[-1] for k in info.datasets["checkpoints"] if "/step-00000010/" in k}
    assert {"zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"} <= names
    two = [r["loss"] for r in steps_of(lake, "two")]
    one = [r["loss"] for r in steps_of(lake, "ref")][:10]
    # same rows, same weights; only the per-rank token weighting of the mean and the reduction order differ
    assert two[0] == pytest.approx(one[0], rel=1e-2)
    assert two == pytest.approx(one, rel=0.1)
    assert info.stats["metrics"]["data_cursors"] == {"file_level": 40}


CONTINUED = {"continue_phases": [{"name": "continued", "steps": 20, "lr": 1e-3}], "continue_warmup_steps": 2}


def test_continued_pretraining_starts_from_the_base_release_and_resumes_exactly(reference, lake_dir: Path,
                                                                               tmp_path: Path):
    """Release "cont" continues "ref" (tokenizer pinned): its run starts from ref's final model and follows the
    continued schedule; a copy killed after its first checkpoint and re-run draws the same curve step for step."""
    lake, ref_info, _ = reference
    for name in ("cont", "cont-killed"):
        build_shards(lake, name, base="ref")
    config = write_config(tmp_path / "cfg.yaml", lake_dir, tmp_path / "scratch", **section(**CONTINUED))
    run_stage("cont", config)
    info = lake.require(Partition.release("cont"), "pretrain")
    metrics = info.stats["metrics"]
    assert (metrics["init"], metrics["base_release"]) == ("base_release", "ref")
    assert metrics["base_model"].endswith(f"{ref_info.prefix}/hf") and metrics["steps"] == 20
    assert [p["phase"] for p in metrics["schedule"]] == ["continued"]
    cont = steps_of(lake, "cont")
    ref = steps_of(lake, "ref")
    # It starts where the base ended, not from random weights.
    assert cont[0]["loss"] < 0.5 * ref[0]["loss"] and cont[0]["loss"] < 2 * ref[-1]["loss"]

    proc = subprocess.Popen(stage_command("cont-killed", config), cwd=REPO, env=stage_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("release=cont-killed/pretrain/attempt=*/checkpoints/step-00000010/trainer_state.json", lake_dir,
                 proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert lake.commit_info(Partition.release("cont-killed"), "pretrain") is None
    out = run_stage("cont-killed", config)
    assert "resumed from" in out.stderr
    resumed = lake.require(Partition.release("cont-killed"), "pretrain").stats["metrics"]
    assert 10 <= resumed["resumed_from_step"] < 20 and resumed["init"] == "base_release"
    killed = steps_of(lake, "cont-killed")
    assert [r["step"] for r in killed] == list(range(1, 21))
    assert [r["loss"] for r in killed] == pytest.approx([r["loss"] for r in cont], rel=1e-6, abs=1e-7)
