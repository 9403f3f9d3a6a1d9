"""The main command's DAG chain, timed: with one warm Spark driver for the chain vs a process per Spark stage.

Each round runs ``scripts/pipeline.py`` on a fresh lake (a first run: nothing reused) for each mode, alternating
the modes so that a slower stretch of the machine hits both alike, and reads back the chain's per-stage
breakdown (``--timing-json``: wall, fixed costs, work per stage). It prints, per DAG and per stage, the median over
rounds of each mode, and the ratio.

    .venv/bin/python benchmarks/pipeline_chain.py --dags crawl,dedup,filters --rounds 3     # the Spark-heavy part
    .venv/bin/python benchmarks/pipeline_chain.py --rounds 3                                # the whole chain
    .venv/bin/python benchmarks/pipeline_chain.py --modes warm --rounds 3 --config old.yaml # another profile YAML

The demo source (``.work/demo_source``, scripts/demo.sh builds it) must exist; lakes go to ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MODES = {"cold": ["--cold-spark"], "warm": []}


def run_chain(mode: str, round_: int, args) -> dict:
    lake = Path(args.work) / f"lake-{mode}-{round_}"
    shutil.rmtree(lake, ignore_errors=True)
    timing = Path(args.work) / f"timing-{mode}-{round_}.json"
    env = {**os.environ, "SEEDCODER_LAKE_ROOT": str(lake), "SEEDCODER_PROFILE": "local", "PYTHONUNBUFFERED": "1",
           "PYSPARK_PYTHON": str(REPO / ".venv" / "bin" / "python"),
           "PATH": os.pathsep.join([str(REPO / ".venv" / "bin"), os.environ.get("PATH", "")])}
    if args.config:
        env["SEEDCODER_CONFIG"] = str(Path(args.config).resolve())
    cmd = [str(REPO / ".venv" / "bin" / "python"), str(REPO / "scripts" / "pipeline.py"), "--snapshot", "demo",
           "--timing-json", str(timing), "--airflow-home", str(Path(args.work) / f"airflow-{mode}-{round_}"),
           *MODES[mode]]
    if args.dags:
        cmd += ["--dags", args.dags]
    t0 = time.monotonic()
    with open(Path(args.work) / f"log-{mode}-{round_}.txt", "wb") as log:
        status = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    if status != 0:
        raise SystemExit(f"{mode} round {round_} failed (exit {status}); see {log.name}")
    result = json.loads(timing.read_text())
    result["command_seconds"] = round(time.monotonic() - t0, 1)
    if not args.keep:
        shutil.rmtree(lake, ignore_errors=True)
    print(f"round {round_} {mode}: chain {result['total_seconds']}s, command {result['command_seconds']}s",
          flush=True)
    return result


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    from benchmarks.quiet import MachineGuard, add_quiet_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dags", default=None, help="comma-separated DAGs (default: the whole chain)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs both modes")
    parser.add_argument("--modes", default="cold,warm", help="which of cold,warm to run")
    parser.add_argument("--work", default=str(REPO / ".work" / "bench-chain"), help="lakes, logs and timings")
    parser.add_argument("--keep", action="store_true", help="keep each round's lake")
    parser.add_argument("--config", default=None,
                        help="profile YAML to run with (SEEDCODER_CONFIG; default: config/local.yaml); its lake root "
                             "must be ${SEEDCODER_LAKE_ROOT:-...} so that each round gets a fresh lake")
    parser.add_argument("--json", default=None, help="also write every round's breakdown here")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    if not (REPO / ".work" / "demo_source").is_dir():
        raise SystemExit("no demo source: run `.venv/bin/python -m spark_jobs.crawl.demo_source --out "
                         ".work/demo_source` (scripts/demo.sh does)")
    guard = MachineGuard.from_args(args)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    modes = args.modes.split(",")
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    for round_ in range(1, args.rounds + 1):
        for mode in (modes if round_ % 2 else modes[::-1]):
            runs[mode].append(run_chain(mode, round_, args))
    print(f"# the main command's chain ({args.dags or 'all DAGs'}), first runs on fresh lakes, {args.rounds} rounds")
    print(f"# command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    header = " | ".join(f"{m} (median s)" for m in modes)
    print(f"| DAG / stage | {header} |" + (" cold / warm |" if len(modes) == 2 else ""))
    print("|---|" + "---:|" * len(modes) + ("---:|" if len(modes) == 2 else ""))
    first = runs[modes[0]][0]
    for d, dag in enumerate(first["dags"]):
        cells = [median([r["dags"][d]["seconds"] for r in runs[m]]) for m in modes]
        ratio = f" {cells[0] / cells[1]:.2f}x |" if len(modes) == 2 and cells[1] else ""
        print(f"| **{dag['dag']}** | " + " | ".join(f"{c:.1f}" for c in cells) + f" |{ratio}")
        for s, stage in enumerate(dag["stages"]):
            cells = []
            for m in modes:
                walls = [r["dags"][d]["stages"][s]["wall"] for r in runs[m] if len(r["dags"][d]["stages"]) > s]
                fixed = [sum(r["dags"][d]["stages"][s]["fixed"].values()) for r in runs[m]
                         if len(r["dags"][d]["stages"]) > s]
                cells.append((median(walls), median(fixed)))
            ratio = f" {cells[0][0] / cells[1][0]:.2f}x |" if len(modes) == 2 and cells[1][0] else ""
            print(f"| {stage['stage']} | " + " | ".join(f"{w:.1f} (fixed {f:.1f})" for w, f in cells) + f" |{ratio}")
    totals = [median([r["total_seconds"] for r in runs[m]]) for m in modes]
    ratio = f" {totals[0] / totals[1]:.2f}x |" if len(modes) == 2 and totals[1] else ""
    print("| **chain** (DAGs + the warm driver's start) | " + " | ".join(f"**{t:.1f}**" for t in totals) + f" |{ratio}")
    for m in modes:
        print(f"# {m}: chain seconds per round {[r['total_seconds'] for r in runs[m]]}")
    print(guard.report())
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "machine": guard.summary()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
