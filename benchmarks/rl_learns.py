"""Does the RL loop learn? Warm-up, then one GRPO round on the arithmetic task set, with the pass rate of every task
estimated before and after the round by the curriculum step (same sampler, same samples per task).

The per-step mean reward of a round is not the measure: the curriculum orders tasks easiest first, so a round's
first steps see easier tasks than its last. The paired per-task difference of the two estimates is; it is printed
with its standard error over tasks. Everything runs through the stage CLI (``python -m training.rl``) on a lake in
a temporary directory, with a random-init tiny model and its tokenizer built here (the evaluation tests' builder).

    .venv-gpu/bin/python benchmarks/rl_learns.py                 # the run recorded in benchmarks/RESULTS-rl.md
    .venv-gpu/bin/python benchmarks/rl_learns.py --steps 10 --lr 1e-4
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "training" / "evaluate")]

from benchmarks.quiet import MachineGuard, add_quiet_arguments  # noqa: E402


def section(args, scratch: Path) -> dict:
    return {
        "tasks": f"easy:{args.tasks}", "seed": args.seed, "threads": 2, "export_dtype": "float32",
        "scratch_dir": str(scratch),
        "rollout": {"name": args.rollout, "n": args.n, "temperature": 1.0, "kv_cache_memory_bytes": 256 << 20},
        "data": {"train_batch_size": args.batch, "max_prompt_length": 128, "max_response_length": 32},
        "actor": {"strategy": args.strategy, "ppo_micro_batch_size_per_gpu": 16,
                  "optim": {"lr": args.lr, "weight_decay": 0.0}},
        "algorithm": {"overlong_filter": args.overlong == "mask"},
        "rounds": [{"steps": args.steps}, {"steps": args.steps}],
        "warmup": {"steps": 40, "batch_size": 16, "micro_batch_size": 16, "lr": 1e-3, "lr_warmup_steps": 5},
        "curriculum": {"samples_per_task": args.samples},
        "save_freq": 5,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--tasks", type=int, default=64, help="arithmetic tasks (easy:N)")
    parser.add_argument("--steps", type=int, default=30, help="GRPO steps of the round")
    parser.add_argument("--batch", type=int, default=8, help="prompts per step (data.train_batch_size)")
    parser.add_argument("--n", type=int, default=8, help="responses per prompt")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--samples", type=int, default=16, help="samples per task of the before/after estimates")
    parser.add_argument("--rollout", choices=["vllm", "hf"], default="vllm")
    parser.add_argument("--strategy", choices=["torch", "deepspeed"], default="torch")
    parser.add_argument("--seed", type=int, default=0)
    # At this size masking lets truncated junk drift up unpunished (benchmarks/RESULTS-rl.md): train on it here.
    parser.add_argument("--overlong", choices=["mask", "train"], default="train",
                        help="truncated responses: masked out of the loss (the report's default) or trained on their "
                             "reward (a format error)")
    parser.add_argument("--work", default=None, help="keep the lake here (default: a temporary directory)")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    guard = MachineGuard.from_args(args)
    from evaluate_fixtures import build_model

    work = Path(args.work or tempfile.mkdtemp(prefix="rl-learns-"))
    base = build_model(work / "base")
    config = work / "config.json"
    config.write_text(json.dumps({"profile": "local", "lake": {"root": str(work / "lake")},
                                  "stages": {"sandbox": {"workers": 2}, "rl": section(args, work / "scratch")}}))
    timings = {}

    def stage(*argv: str) -> None:
        t0 = time.monotonic()
        cmd = [sys.executable, "-m", "training.rl", *argv, "--release", "learns.rl", "--config", str(config)]
        print("$", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, cwd=REPO, check=True)
        timings[" ".join(argv)] = round(time.monotonic() - t0, 1)

    stage("warmup", "--model", str(base))
    stage("curriculum", "--round", "1")
    stage("grpo", "--round", "1")
    stage("curriculum", "--round", "2")  # the same estimate, with round 1's policy

    from lake.stage import Lake, Partition

    lake, part = Lake.at(str(work / "lake")), Partition.release("learns.rl")
    before = {r["task_id"]: r["pass_rate"] for r in lake.read_table(part, "rl_curriculum_1", "estimates").to_pylist()}
    after = {r["task_id"]: r["pass_rate"] for r in lake.read_table(part, "rl_curriculum_2", "estimates").to_pylist()}
    diff = [after[k] - before[k] for k in before]
    se = statistics.stdev(diff) / len(diff) ** 0.5
    steps = lake.stats(part, "rl_round_1")["metrics"]
    out = {"tasks": len(diff), "samples_per_task": args.samples, "steps": args.steps, "lr": args.lr,
           "overlong": args.overlong,
           "pass_rate_before": statistics.mean(before.values()), "pass_rate_after": statistics.mean(after.values()),
           "paired_diff": statistics.mean(diff), "paired_se": se, "tasks_up": sum(d > 0 for d in diff),
           "tasks_down": sum(d < 0 for d in diff), "reward_curve": steps["reward_curve"], "seconds": timings,
           "machine": guard.summary()}
    print(f"\npass rate on {len(diff)} tasks ({args.samples} samples each): {out['pass_rate_before']:.3f} after the "
          f"warm-up -> {out['pass_rate_after']:.3f} after {args.steps} GRPO steps; paired difference "
          f"{out['paired_diff']:+.3f} (se {se:.3f} over tasks; {out['tasks_up']} up, {out['tasks_down']} down)")
    print("per-step mean reward (tasks in curriculum order, easiest first):", steps["reward_curve"])
    print("stage seconds:", timings)
    print(guard.report())
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
