"""How much of the CPU's matmul rate do the tiny scorer's and the tiny pretraining preset's training steps use?

The denominator is measured here, on the same cores and threads: the best fp32 matmul rate torch reaches on
square matrices (512 to 2048), and, for reference, on the shapes of the models' own largest matmuls. The
numerators are the real training steps on real code (the Python standard library):

- ``scorer``: training/quality/train_scorer.py's ``train_step`` on the tiny base (a Llama with a regression
  head), batches of ``--scorer-batch`` files cut to ``max_tokens`` and right-padded as the stage pads them;
- ``pretrain``: the pretraining stage's engine (``--engine``, the local profile's: plain torch) on the tiny
  preset, rows of ``--seq-len`` tokens packed by the dataset build's writer, ``--micro-batch`` rows a step.

Achieved FLOP/s counts only real tokens (padding is waste): 6 x the matmul parameters a token goes through
(decoder layers and the head; not the embedding lookup) + 6 x layers x hidden x seq for causal attention, per
token, forward and backward (training/pretrain/presets.flops_per_token's rule). The ratio is that over the
measured matmul rate: MFU against what this machine's matmuls can do.

    .venv-gpu/bin/python benchmarks/cpu_training_efficiency.py                 # both models, the configs' shapes
    .venv-gpu/bin/python benchmarks/cpu_training_efficiency.py --scorer-batch 16 --micro-batch 8   # other shapes

On a GPU machine the same script measures bf16 on the card (``--device cuda``) with the same accounting.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

log = logging.getLogger("cpu_training_efficiency")


def matmul_rate(n: int, k: int, m: int, *, device, dtype, repeats: int = 30) -> float:
    """Best FLOP/s of ``[n x k] @ [k x m]`` over ``repeats`` calls (the pretraining stage's own probe)."""
    from training.pretrain.train import measure_matmul_flops

    return measure_matmul_flops(device, dtype, shape=(n, k, m), repeats=repeats)


def peak_rate(device, dtype, sizes=(512, 1024, 2048), repeats: int = 30) -> dict[str, float]:
    rates = {f"square_{n}": matmul_rate(n, n, n, device=device, dtype=dtype, repeats=repeats) for n in sizes}
    return {"peak": max(rates.values()), **rates}


def matmul_params(model) -> int:
    """Parameters of the linear layers a token goes through (not the embedding table: a lookup)."""
    import torch

    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def stdlib_token_rows(tokenizer, max_tokens: int, count: int) -> list[list[int]]:
    from training.quality.scorer import encode
    from training.quality.tiny_base import code_corpus

    texts = [t for t in code_corpus(max_files=4 * count) if len(t) > 200][:count]
    ids, _cut = encode(tokenizer, texts, max_tokens)
    return ids


def bench_scorer(args, device, threads: int) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.quality.scorer import pad_batch
    from training.quality.tiny_base import build_tiny_base
    from training.quality.train_scorer import train_step

    base = Path(args.base)
    if not (base / "config.json").exists():
        build_tiny_base(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, problem_type="regression",
                                                               dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device).train()
    optim = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    rows = stdlib_token_rows(tokenizer, args.max_tokens, args.scorer_batch * (args.steps + args.warmup))
    cfg = model.config
    per_token_linear = 6.0 * matmul_params(model)
    real = padded = 0
    flops = 0.0
    times = []
    for step in range(args.warmup + args.steps):
        batch = rows[(step * args.scorer_batch) % len(rows):][: args.scorer_batch] or rows[: args.scorer_batch]
        input_ids, lengths = pad_batch(batch, tokenizer.pad_token_id)
        targets = torch.rand(len(batch))
        t0 = time.perf_counter()
        train_step(model, optim, input_ids, lengths, targets, 3e-4)
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
            real += int(lengths.sum())
            padded += input_ids.numel()
            # causal attention per real token: 6 x layers x heads x head_dim x (mean position + 1)
            flops += sum(per_token_linear * n + 6.0 * cfg.num_hidden_layers * cfg.hidden_size * n * (n + 1) / 2
                         for n in lengths.tolist())
    seconds = sum(times)
    return {"model": "scorer (tiny base + regression head)", "matmul_params": matmul_params(model),
            "shape": f"batch {args.scorer_batch} x <= {args.max_tokens} tokens (right-padded)",
            "tokens_per_s": real / seconds, "flops_per_s": flops / seconds, "padding_share": 1 - real / padded,
            "step_ms_median": 1000 * statistics.median(times), "steps": len(times), "threads": threads,
            "largest_matmul": (int(padded / len(times)), cfg.hidden_size, cfg.intermediate_size)}


def bench_pretrain(args, device, threads: int) -> dict:

    from benchmarks.pretrain_cpu import build_lake
    from lake.stage import Lake, Partition
    from lake.token_shards import TokenShards
    from training.pretrain.config import PretrainConfig
    from training.pretrain.data import MixtureLoader
    from training.pretrain.engine import make_engine
    from training.pretrain.presets import build_model, flops_per_token, parameter_counts, preset
    from training.pretrain.train import DistEnv, init_distributed

    init_distributed(DistEnv(), device)
    with tempfile.TemporaryDirectory() as tmp:
        build_lake(Path(tmp), seq_len=args.seq_len, vocab_size=4096, max_files=args.pretrain_files)
        source = TokenShards(Lake.at(tmp), Partition.release("bench"), "file_level")
        spec = preset("tiny").with_vocab(int(source.index["vocab_size"]))
        cfg = PretrainConfig(engine=args.engine, zero_stage=2, micro_batch_size=args.micro_batch, threads=threads)
        model = build_model(spec, seed=0, bos_id=0, eos_id=2, pad_id=1)
        engine = make_engine(model, cfg, 1, device)
        loader = MixtureLoader({"file_level": source}, seed=0, micro_batch_size=args.micro_batch, grad_accum_steps=1)
        times, tokens = [], 0
        for step in range(args.warmup + args.steps):
            batch = loader.step_batches(step, {"file_level": 1.0})[0]
            t0 = time.perf_counter()
            float(engine.forward_backward(batch))
            engine.step(3e-4)
            if step >= args.warmup:
                times.append(time.perf_counter() - t0)
                tokens += batch.input_ids.size
    seconds = sum(times)
    per_token = flops_per_token(spec, args.seq_len)
    return {"model": f"pretrain (preset tiny, engine {args.engine})",
            "matmul_params": parameter_counts(spec)["non_embedding"],
            "shape": f"micro batch {args.micro_batch} x {args.seq_len} tokens (packed)",
            "tokens_per_s": tokens / seconds, "flops_per_s": tokens * per_token / seconds, "padding_share": 0.0,
            "step_ms_median": 1000 * statistics.median(times), "steps": len(times), "threads": threads,
            "largest_matmul": (args.micro_batch * args.seq_len, spec.hidden_size, spec.architecture()["vocab_size"])}


def main(argv: list[str] | None = None) -> int:
    from benchmarks.quiet import MachineGuard, add_quiet_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", default="scorer,pretrain", help="which of scorer,pretrain to measure")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine (bf16 there)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps per model")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--base", default=str(REPO / ".work" / "models" / "tiny_base"),
                        help="the scorer's base checkpoint (built if missing)")
    parser.add_argument("--scorer-batch", type=int, default=8, help="scorer rows a step (stages.train_scorer)")
    parser.add_argument("--max-tokens", type=int, default=128, help="scorer row cut (stages.train_scorer)")
    parser.add_argument("--engine", default="torch", help="pretraining engine (stages.pretrain.engine)")
    parser.add_argument("--micro-batch", type=int, default=2, help="pretraining rows a step (stages.pretrain)")
    parser.add_argument("--seq-len", type=int, default=512, help="pretraining row length (the demo's shards)")
    parser.add_argument("--pretrain-files", type=int, default=300, help="stdlib files in the pretraining corpus")
    parser.add_argument("--peak-sizes", default="512,1024,2048", help="square matmul sizes of the peak rate")
    parser.add_argument("--matmul-repeats", type=int, default=30, help="calls per matmul rate (best counts)")
    parser.add_argument("--json", default=None, help="also write the results here")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    guard = MachineGuard.from_args(args)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    peak = peak_rate(device, dtype, tuple(int(n) for n in args.peak_sizes.split(",")), args.matmul_repeats)
    results = []
    for name in args.models.split(","):
        result = {"scorer": bench_scorer, "pretrain": bench_pretrain}[name](args, device, threads)
        n, k, m = result["largest_matmul"]
        result["own_shape_matmul_flops_per_s"] = matmul_rate(n, k, m, device=device, dtype=dtype,
                                                             repeats=args.matmul_repeats)
        result["mfu"] = result["flops_per_s"] / peak["peak"]
        results.append(result)
    print("# CPU training efficiency")
    print(f"# command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"device {device}, {threads} threads, {dtype}: matmul peak {peak['peak'] / 1e9:.1f} GFLOP/s "
          f"({', '.join(f'{k} {v / 1e9:.1f}' for k, v in peak.items() if k != 'peak')})")
    print("| model | shape | tokens/s | achieved GFLOP/s | MFU (of peak) | own largest matmul GFLOP/s | padding | "
          "step ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['model']} | {r['shape']} | {r['tokens_per_s']:.0f} | {r['flops_per_s'] / 1e9:.2f} | "
              f"{100 * r['mfu']:.1f}% | {r['own_shape_matmul_flops_per_s'] / 1e9:.1f} | "
              f"{100 * r['padding_share']:.1f}% | {r['step_ms_median']:.0f} |")
    print(guard.report())
    if args.json:
        Path(args.json).write_text(json.dumps({"peak": peak, "results": results, "threads": threads,
                                               "machine": guard.summary()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
