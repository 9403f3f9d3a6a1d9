"""MFU of one-GPU pretraining: the 1b preset, bf16, sequence 4096 x micro batch 4, packed rows with documents.

One short call measures every variant in its own subprocess (an out-of-memory variant is reported, not fatal):

- ``torch_bf16``: plain torch + transformers, model and AdamW states in pure bf16 (the issue's peer, 51.5% on H200)
- ``ds_zero2``: DeepSpeed ZeRO-2, bf16 with fp32 master weights, torch AdamW, transformers' loss (43.2% on H200)
- ``ds_zero2_fused_adamw``: + torch's fused AdamW kernel
- ``ds_zero2_fused_adamw_fused_loss``: + chunked fused linear cross-entropy (no [tokens x 155,136] logits)
- ``ds_zero2_all_compiled``: + ``torch.compile`` of every decoder layer

MFU = tokens/s x (6 x non-embedding parameters + 6 x layers x hidden x seq, causal attention) / the card's bf16
dense matmul rate measured here (best of 20 8192^3 matmuls). Rows are packed by the project's SequencePacker from
documents whose lengths are those of the Python standard library's files (about 4 bytes per token), so the
attention is document-masked as in training; token ids are random (the cost does not depend on them).

    python benchmarks/gpu_pretrain_mfu.py                        # on the GPU machine, all variants (~3-5 min)
    python benchmarks/gpu_pretrain_mfu.py --preset tiny --seq-len 256 --micro-batch 2 --steps 2 --warmup 1 \\
        --vocab-size 4096 --variants torch_bf16,ds_zero2,ds_zero2_fused_adamw_fused_loss   # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import sysconfig
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

VARIANTS = {
    "torch_bf16": {"engine": "torch", "pure_bf16": True},
    "ds_zero2": {"engine": "deepspeed"},
    "ds_zero2_fused_adamw": {"engine": "deepspeed", "fused_adamw": True},
    "ds_zero2_fused_adamw_fused_loss": {"engine": "deepspeed", "fused_adamw": True, "fused_loss": True},
    "ds_zero2_all_compiled": {"engine": "deepspeed", "fused_adamw": True, "fused_loss": True, "compile": True},
}


def packed_rows(rows: int, seq_len: int, vocab: int, seed: int = 0):
    """Rows packed from stdlib-sized documents (tokens, doc_starts, valid), random ids, no padding rows."""
    import numpy as np

    from lake.token_shards import SequencePacker

    rng = np.random.default_rng(seed)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    lengths = [max(8, p.stat().st_size // 4) for p in sorted(stdlib.rglob("*.py"))[:4000]]
    packer = SequencePacker(seq_len, pad_id=1, max_rows=rows)
    out = []
    for n in lengths * 8:
        for block in packer.add(rng.integers(10, vocab, min(n, 4 * seq_len), dtype=np.uint32)):
            out.append(block)
        if out:
            break
    block = out[0]
    result = []
    for i in range(rows):
        lo, hi = np.searchsorted(block.doc_starts, [i * seq_len, (i + 1) * seq_len])
        result.append((block.tokens[i], block.doc_starts[lo:hi] - i * seq_len, int(block.valid[i])))
    return result


def measure_peak(device: str) -> float:
    import torch

    from training.pretrain.train import measure_matmul_flops

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    return measure_matmul_flops(torch.device(device), dtype, size=8192 if device == "cuda" else 1024, repeats=20)


def run_variant(name: str, args) -> dict:
    """Train ``args.warmup + args.steps`` steps of one variant in this process; tokens/s over the timed steps."""
    import numpy as np
    import torch

    from training.pretrain.config import OptimizerConfig, PretrainConfig
    from training.pretrain.data import MicroBatch, example
    from training.pretrain.engine import make_engine
    from training.pretrain.presets import build_model, preset
    from training.pretrain.train import DistEnv, init_distributed

    spec = VARIANTS[name]
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(0)
    init_distributed(DistEnv(), device)
    cfg = PretrainConfig(
        preset=args.preset, engine=spec["engine"], zero_stage=2, bf16=device.type == "cuda" or args.bf16,
        micro_batch_size=args.micro_batch, grad_accum_steps=1,
        optimizer=OptimizerConfig(fused=bool(spec.get("fused_adamw"))),
        fused_loss_chunk=args.loss_chunk if spec.get("fused_loss") else None,
        compile_layers=bool(spec.get("compile")), attn_implementation=args.attn)
    model_spec = preset(args.preset).with_vocab(args.vocab_size)
    model = build_model(model_spec, seed=0, bos_id=0, eos_id=2, pad_id=1, attn_implementation=args.attn,
                        dtype=torch.bfloat16 if spec.get("pure_bf16") else None)
    if spec["engine"] == "torch":
        cfg = cfg.model_copy(update={"bf16": False})  # pure bf16 weights already; no autocast
    engine = make_engine(model.to(device), cfg, 1, device)
    rows = packed_rows(args.micro_batch * 4, args.seq_len, args.vocab_size)
    batches = []
    for i in range(4):
        parts = [example(*r) for r in rows[i * args.micro_batch : (i + 1) * args.micro_batch]]
        ids, labels, pos = (np.stack(x) for x in zip(*parts, strict=True))
        batches.append(MicroBatch(ids, labels, pos, int((labels != -100).sum())))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    losses = []
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            sync()
            t0 = time.perf_counter()
        batch = batches[step % len(batches)]
        losses.append(float(engine.forward_backward(batch)))
        engine.step(1e-4)
    sync()
    seconds = time.perf_counter() - t0
    tokens = args.steps * args.micro_batch * args.seq_len
    peak_mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return {"variant": name, "tokens_per_s": tokens / seconds, "seconds": seconds, "loss_first": losses[0],
            "loss_last": losses[-1], "peak_memory_gib": peak_mem}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", default="1b", help="model preset")
    parser.add_argument("--vocab-size", type=int, default=155_136, help="vocabulary (Seed-Coder's by default)")
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (allocator, compilation)")
    parser.add_argument("--loss-chunk", type=int, default=4096, help="tokens per chunk of the fused loss")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "flash_attention_2", "eager"])
    parser.add_argument("--device", default="cuda" if _has_cuda() else "cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 on CPU too (always on for cuda)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " +
                        ", ".join(VARIANTS))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(run_variant(args.one, args)), flush=True)
        return 0
    names = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    from training.pretrain.presets import flops_per_token, parameter_counts, preset

    spec = preset(args.preset).with_vocab(args.vocab_size)
    per_token = flops_per_token(spec, args.seq_len)
    peak = measure_peak(args.device)
    results = []
    passthrough = [a for a in (argv if argv is not None else sys.argv[1:])]
    for name in names:
        cmd = [sys.executable, str(Path(__file__).resolve()), *passthrough, "--one", name]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            reason = "out of memory" if "OutOfMemoryError" in proc.stderr else " | ".join(tail)
            results.append({"variant": name, "error": reason})
            print(f"{name}: failed: {reason}", file=sys.stderr)
            continue
        result = json.loads(lines[-1][7:])
        result["mfu"] = result["tokens_per_s"] * per_token / peak
        results.append(result)
        print(f"{name}: {result['tokens_per_s']:.0f} tokens/s, MFU {100 * result['mfu']:.1f}%", file=sys.stderr)
    device_name = _device_name(args.device)
    print(f"# GPU pretraining MFU, {date.today()}, {device_name}, {platform.machine()}")
    print(f"# preset {args.preset} ({parameter_counts(spec)['total'] / 1e9:.2f}B parameters, vocab "
          f"{args.vocab_size}), seq {args.seq_len} x micro batch {args.micro_batch}, {args.steps} timed steps")
    print(f"# measured dense matmul rate: {peak / 1e9:.1f} GFLOP/s; {per_token / 1e9:.3f} GFLOP per token")
    print("| variant | tokens/s | MFU | peak GiB | loss first -> last |")
    print("|---|---:|---:|---:|---|")
    base = next((r for r in results if r["variant"] == "torch_bf16" and "error" not in r), None)
    for r in results:
        if "error" in r:
            print(f"| {r['variant']} | - | - | - | failed: {r['error']} |")
            continue
        mem = f"{r['peak_memory_gib']:.1f}" if r["peak_memory_gib"] is not None else "-"
        print(f"| {r['variant']} | {r['tokens_per_s']:.0f} | {100 * r['mfu']:.1f}% | {mem} | "
              f"{r['loss_first']:.3f} -> {r['loss_last']:.3f} |")
    if base:
        for r in results:
            if "error" not in r and r is not base:
                print(f"{r['variant']} / torch_bf16 tokens/s: {r['tokens_per_s'] / base['tokens_per_s']:.3f}")
    if args.out:
        args.out.write_text(json.dumps({"device": device_name, "peak_flops": peak, "results": results}, indent=2))
    return 0


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({os.cpu_count()} cores)"


if __name__ == "__main__":
    sys.exit(main())
