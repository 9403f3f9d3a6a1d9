"""Throughput of one GRPO step's three phases (rollout, reward, update), each against a named peer, same run.

- **rollout**: our vLLM rollout (the policy's weights synced in place before every step, timed as ``sync``) vs
  transformers' ``generate`` (the fallback backend), same prompts, same ``n``, same sampling settings: generated
  tokens/s.
- **reward**: the sandbox judge (the local pool: bubblewrap, a uid per slot, rlimits) on the responses' extracted
  code: programs/s.
- **update**: the clipped-loss policy update on DeepSpeed ZeRO-2 (what the stage runs) vs plain torch AdamW, on the
  same trajectories from the same weights: trained tokens/s.

The policy is the tiny preset (CPU) or the 1B preset (``--preset 1b`` on a GPU machine) with a BPE tokenizer trained
here on the task prompts and the standard library, so nothing is downloaded. It is warmed up on the arithmetic task
set's references for ``--warmup-steps`` so that responses look like answers (the reward phase judges real
programs). Phases alternate over ``--rounds`` rounds; the table gives medians and the ratios. The machine must be
quiet (benchmarks/quiet.py): the load average before and after is printed with the numbers.

    .venv-gpu/bin/python benchmarks/rl_throughput.py                       # CPU, tiny
    # one GPU machine without vLLM or bubblewrap (nothing installable there but carried wheels): the transformers
    # rollout, rewards by matching the reference, DeepSpeed vs torch on the 1B preset
    python benchmarks/rl_throughput.py --preset 1b --prompts 16 --n 8 --max-tokens 256 --engines transformers \
        --reward match --allow-busy
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "training" / "evaluate")]

from benchmarks.quiet import MachineGuard, add_quiet_arguments  # noqa: E402

log = logging.getLogger("rl_throughput")


def build_policy(out: Path, preset_name: str, vocab_size: int) -> Path:
    """A random-init policy of the preset, its BPE trained on the JSON package and the arithmetic tasks."""
    from evaluate_fixtures import build_model

    from training.rl.tasks import easy_tasks

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [p.read_text(encoding="utf-8") for p in sorted((stdlib / "json").glob("*.py"))]
    texts += [t.prompt + (t.reference or "") for t in easy_tasks(200)] * 3
    return build_model(out, vocab_size=vocab_size, preset_name=preset_name, texts=texts, max_position_embeddings=4096)


def warm_up(actor, tokenizer, tasks, steps: int, device) -> None:
    """A few supervised steps on the references (the warm-up stage's loss), so responses are answers."""
    from training.rl.extract import format_reference
    from training.rl.policy import Trajectory, collate

    examples = [Trajectory(tokenizer.encode(t.prompt, add_special_tokens=False),
                           tokenizer.encode(format_reference(t.reference), add_special_tokens=False)
                           + [tokenizer.eos_token_id], 0.0) for t in tasks]
    for step in range(steps):
        batch = [examples[(step * 16 + i) % len(examples)] for i in range(16)]
        b = collate(batch, 0, device)
        logp, _ = actor.forward(b, 1.0)
        loss = -(logp * b["loss_mask"]).sum() / b["loss_mask"].sum()
        actor.backward(loss)
        actor.step(1e-3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", default="tiny", help="model preset (training/pretrain/presets.py)")
    parser.add_argument("--vocab-size", type=int, default=1200)
    parser.add_argument("--prompts", type=int, default=16, help="prompts per step (groups)")
    parser.add_argument("--n", type=int, default=8, help="responses per prompt")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup-steps", type=int, default=40)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="sandbox slots")
    parser.add_argument("--engines", default="vllm,transformers",
                        help="rollout engines to time, comma-separated (the first one's responses are scored)")
    parser.add_argument("--reward", choices=["sandbox", "match"], default="sandbox",
                        help="sandbox: judge the code (needs bubblewrap); match: the code equals the reference")
    parser.add_argument("--json", default=None, help="also write the results here")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    guard = MachineGuard.from_args(args)

    import torch
    from transformers import AutoTokenizer

    from training.pretrain.train import DistEnv, init_distributed
    from training.rl.config import ActorConfig, RolloutConfig
    from training.rl.extract import extract_code
    from training.rl.judge import Judge
    from training.rl.loss import policy_loss
    from training.rl.policy import Actor, Trajectory, collate
    from training.rl.rollout import HFRollout, SamplingSpec, VllmRollout, prompt_seed
    from training.rl.tasks import easy_tasks
    from training.sandbox import Limits, SandboxConfig

    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    init_distributed(DistEnv(), device)
    work = Path(tempfile.mkdtemp(prefix="rl-bench-"))
    base = build_policy(work / "base", args.preset, args.vocab_size)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tasks = easy_tasks(max(args.prompts, 32))
    actors = {name: Actor(base, ActorConfig(strategy=name, zero_stage=2, bf16=device.type == "cuda",
                                           optim={"weight_decay": 0.0}),
                          micro_batch_size=args.micro_batch, grad_accum_steps=1, world_size=1, device=device)
              for name in ("deepspeed", "torch")}
    warm_up(actors["deepspeed"], tokenizer, tasks, args.warmup_steps, device)
    state = actors["deepspeed"].weights()
    actors["torch"].engine.module.lm.load_state_dict(state)
    policy_dir = work / "policy"
    from training.rl.policy import export_policy

    export_policy(state, base, policy_dir, "float32" if device.type == "cpu" else "bfloat16")

    spec = SamplingSpec(n=args.n, temperature=args.temperature, top_p=1.0, top_k=-1, max_tokens=args.max_tokens)
    prompts = [tokenizer.encode(t.prompt, add_special_tokens=False) for t in tasks[: args.prompts]]
    rollout_cfg = RolloutConfig(name="vllm", kv_cache_memory_bytes=(256 << 20) if device.type == "cpu" else None,
                                gpu_memory_utilization=0.4)
    engines, start = {}, {}
    for name in args.engines.split(","):
        t0 = time.perf_counter()
        if name == "vllm":
            engines[name] = VllmRollout(policy_dir, rollout_cfg, max_model_len=512 + args.max_tokens, seed=0)
        elif name == "transformers":
            engines[name] = HFRollout(policy_dir, RolloutConfig(name="hf"), device=device)
        else:
            parser.error(f"--engines: unknown engine {name!r} (vllm, transformers)")
        start[name] = time.perf_counter() - t0
    first = next(iter(engines))
    judge = Judge(SandboxConfig(workers=args.workers), Limits(run_timeout=10.0, memory_limit_MB=512), per_test=False)

    samples: dict[str, list[float]] = {}
    def add(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)

    for r in range(args.rounds):
        seeds = [prompt_seed(0, r, i) for i in range(len(prompts))]
        outputs = {}
        for name, engine in (engines.items() if r % 2 == 0 else reversed(engines.items())):
            t0 = time.perf_counter()
            engine.load_weights(state)
            add(f"sync_s/{name}", time.perf_counter() - t0)
            t0 = time.perf_counter()
            outputs[name] = engine.generate(prompts, spec, seeds)
            seconds = time.perf_counter() - t0
            add(f"gen_tok_s/{name}", sum(len(c.token_ids) for g in outputs[name] for c in g) / seconds)
        groups = outputs[first]
        items = [(tasks[i], extract_code(c.text)) for i, g in enumerate(groups) for c in g]
        if args.reward == "sandbox":
            t0 = time.perf_counter()
            verdicts = judge(items)
            add("judge_programs_s", sum(code is not None for _, code in items) / (time.perf_counter() - t0))
            rewards = [float(v.passed) for v in verdicts]
        else:
            rewards = [float(code is not None and code.strip() == (t.reference or "").strip()) for t, code in items]
        add("pass_rate", sum(rewards) / len(rewards))
        trajectories, k = [], 0
        for i, g in enumerate(groups):
            mean = sum(rewards[k: k + len(g)]) / len(g)
            for c in g:
                trajectories.append(Trajectory(prompts[i], list(c.token_ids), rewards[k] - mean))
                k += 1
        total = float(sum(len(t.response_ids) for t in trajectories))
        for name in (("deepspeed", "torch") if r % 2 == 0 else ("torch", "deepspeed")):
            actor = actors[name]
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            tokens = 0
            for i in range(0, len(trajectories), args.micro_batch):
                b = collate(trajectories[i: i + args.micro_batch], 0, device)
                logp, _ = actor.forward(b, args.temperature)
                loss, _ = policy_loss(logp.detach(), logp, b["advantages"], b["loss_mask"], num_tokens=total)
                actor.backward(loss)
                tokens += int(b["attention_mask"].sum())
            actor.step(0.0)  # lr 0: the same weights every round, the full optimizer step's cost
            if device.type == "cuda":
                torch.cuda.synchronize()
            add(f"train_tok_s/{name}", tokens / (time.perf_counter() - t0))
        log.info("round %d/%d done", r + 1, args.rounds)
    for engine in engines.values():
        engine.close()

    med = {k: statistics.median(v) for k, v in samples.items()}
    results = {"machine": guard.summary(), "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(),
               "preset": args.preset, "prompts": args.prompts, "n": args.n, "max_tokens": args.max_tokens,
               "rounds": args.rounds, "engine_start_s": start, "median": med, "samples": samples}
    print(f"\nGRPO step phases, {args.preset} preset, {args.prompts} prompts x {args.n} responses, <= {args.max_tokens} "
          f"tokens, {args.rounds} interleaved rounds (median), {results['device']}, {platform.node()}")
    for name in engines:
        print(f"  rollout   {name:<12} {med[f'gen_tok_s/{name}']:9.0f} tokens/s (weight sync "
              f"{med[f'sync_s/{name}']:.3f} s, engine start {start[name]:.1f} s)")
    if {"vllm", "transformers"} <= set(engines):
        print(f"            vLLM / transformers generate: "
              f"{med['gen_tok_s/vllm'] / med['gen_tok_s/transformers']:.2f}x")
    if args.reward == "sandbox":
        print(f"  reward    sandbox {med['judge_programs_s']:9.1f} responses judged/s ({args.workers} slots), pass "
              f"rate {med['pass_rate']:.3f}")
    else:
        print(f"  reward    reference match (no sandbox), pass rate {med['pass_rate']:.3f}")
    print(f"  update    DeepSpeed ZeRO-2 {med['train_tok_s/deepspeed']:9.0f} tokens/s   plain torch "
          f"{med['train_tok_s/torch']:9.0f} tokens/s   DeepSpeed / torch: "
          f"{med['train_tok_s/deepspeed'] / med['train_tok_s/torch']:.2f}x")
    print(guard.report())
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
