"""Near dedup side by side: datasketch MinHashLSH, datatrove's MinHash pipeline, and our Spark job (+ local engine).

Same corpus (benchmarks/near_dedup_corpus.py: real code on this machine + seeded near-duplicates), same shingles,
permutations, bands and seed, 2 workers each; every method runs in its own process (benchmarks/near_dedup_peers.py)
whose process tree's resident memory is sampled every 0.2 s for the peak.

Ground truth: exact Jaccard of the shingle-string sets, computed brute force over every pair any method reported
plus a random sample of pairs. Reported per method: pair precision (reported pairs with J >= threshold), pair recall
(true pairs the method connects, directly or through other pairs, i.e. that end up in one duplicate cluster; and
directly reported), documents removed (cluster members beyond one per cluster), docs/s (Spark start-up excluded and
shown separately), peak memory, and wall time at 1x / 2x / 4x the corpus.

    python -m benchmarks.near_dedup_bench --docs 1000 --scales 1 2 4 --out benchmarks/RESULTS-near-dedup.md
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pyarrow.parquet as pq

from benchmarks.near_dedup_corpus import build
from lake.config import REPO_ROOT
from spark_jobs.near_dedup.graph import connected_components
from spark_jobs.near_dedup.shingles import tokens

log = logging.getLogger("near_dedup_bench")
ROW_GROUP_ROWS = 256
PEER_PYTHON = REPO_ROOT / ".venv-bench" / "bin" / "python"
OUR_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
PYTHONS = {"datasketch": PEER_PYTHON, "datatrove": PEER_PYTHON, "datatrove-full": PEER_PYTHON, "spark": OUR_PYTHON,
           "local": OUR_PYTHON, "spark-noverify": OUR_PYTHON}


def write_corpus(docs: int, folder: Path) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    table = build(docs)
    # Row groups of ROW_GROUP_ROWS files let Spark split the file between its 2 tasks, as datatrove gets 2 shards
    # (one unsplittable row group would give all the work to one task; in the pipeline the input is many parts).
    pq.write_table(table, folder / "files.parquet", row_group_size=ROW_GROUP_ROWS)
    rows = table.select(["id", "content"]).to_pylist()
    for shard in range(2):
        with (folder / f"shard-{shard:05d}.jsonl").open("w") as f:
            for row in rows[shard::2]:
                f.write(json.dumps({"id": row["id"], "text": row["content"]}) + "\n")
    return rows


def run_method(method: str, corpus: Path, work: Path, timeout: int) -> dict:
    out = work / f"{method}.json"
    cmd = [str(PYTHONS[method]), str(REPO_ROOT / "benchmarks" / "near_dedup_peers.py"), method,
           "--corpus", str(corpus), "--work", str(work / method), "--out", str(out)]
    log.info("running %s", " ".join(cmd))
    env = dict(os.environ, PYSPARK_PYTHON=str(PYTHONS[method]), PYSPARK_DRIVER_PYTHON=str(PYTHONS[method]))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(work / f"{method}.log", "w"))
    peak, t0 = 0, time.perf_counter()
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            raise RuntimeError(f"{method} ran past {timeout}s; see {work / (method + '.log')}")
        time.sleep(0.2)
    if proc.returncode:
        raise RuntimeError(f"{method} failed with exit code {proc.returncode}; see {work / (method + '.log')}")
    result = json.loads(out.read_text())
    result["peak_rss_mb"] = peak / 2**20
    result["pairs"] = [tuple(p) for p in result["pairs"]]
    return result


def ground_truth(rows: list[dict], reported: set[tuple[str, str]], random_pairs: int, ngram: int = 5) -> dict:
    """Exact Jaccard of shingle-string sets for every reported pair and a random sample of pairs."""
    sets = {}
    for row in rows:
        toks = tokens(row["content"])
        sets[row["id"]] = {" ".join(toks[i : i + ngram]) for i in range(len(toks) - ngram + 1)}
    ids = sorted(sets)
    rng = random.Random(0)
    sample = set()
    while len(sample) < min(random_pairs, len(ids) * (len(ids) - 1) // 2):
        a, b = rng.sample(ids, 2)
        sample.add((min(a, b), max(a, b)))
    out = {}
    for a, b in reported | sample:
        sa, sb = sets[a], sets[b]
        union = len(sa | sb)
        out[(a, b)] = len(sa & sb) / union if union else 0.0
    return out


def score(pairs: list[tuple[str, str]], truth: dict, threshold: float) -> dict:
    reported = set(pairs)
    true_pairs = {p for p, j in truth.items() if j >= threshold}
    comp = connected_components([], reported)
    connected = sum(1 for a, b in true_pairs if a in comp and b in comp and comp[a] == comp[b])
    clusters = len(set(comp.values()))
    return {"reported_pairs": len(reported),
            "precision": sum(truth[p] >= threshold for p in reported) / len(reported) if reported else 1.0,
            "recall": connected / len(true_pairs) if true_pairs else 1.0,
            "direct_recall": len(reported & true_pairs) / len(true_pairs) if true_pairs else 1.0,
            "docs_removed": len(comp) - clusters, "true_pairs": len(true_pairs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000, help="real files at scale 1 (seeded copies on top)")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--methods", nargs="+", default=["datasketch", "datatrove", "spark", "local"],
                        choices=sorted(PYTHONS))
    parser.add_argument("--threshold", type=float, default=0.8, help="Jaccard threshold of the ground truth")
    parser.add_argument("--random-pairs", type=int, default=20_000, help="random pairs added to the ground truth")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/near-dedup-bench"))
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per method run")
    parser.add_argument("--out", type=Path, default=None, help="markdown file to write the results to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    missing = [m for m in args.methods if not PYTHONS[m].exists()]
    if missing:
        parser.error(f"{missing} need {PEER_PYTHON} (python3.11 -m venv .venv-bench && "
                     ".venv-bench/bin/pip install datatrove==0.10.1 datasketch==2.0.0 xxhash regex tokenizers)")
    load_before = os.getloadavg()
    rows_out, walls = [], {}
    for scale in args.scales:
        folder = args.workdir / f"x{scale}"
        rows = write_corpus(args.docs * scale, folder / "corpus")
        results = {m: run_method(m, folder / "corpus", folder, args.timeout) for m in args.methods}
        truth = ground_truth(rows, {p for r in results.values() for p in r["pairs"]}, args.random_pairs)
        for method, res in results.items():
            s = score(res["pairs"], truth, args.threshold)
            walls[(method, scale)] = res["seconds"]
            rows_out.append({"scale": scale, "docs": len(rows), "method": method, "seconds": res["seconds"],
                             "startup": res.get("startup_seconds"), "docs_per_s": len(rows) / res["seconds"],
                             "peak_rss_mb": res["peak_rss_mb"], **s})
            log.info("%s", rows_out[-1])
    report = render(rows_out, walls, args, load_before, os.getloadavg())
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


def render(rows, walls, args, load_before, load_after) -> str:
    cmd = "python -m benchmarks.near_dedup_bench " + " ".join(sys.argv[1:])
    lines = [
        "# Near dedup: ours (Spark local[2], single process) vs datasketch MinHashLSH vs datatrove", "",
        f"- date: {datetime.now(UTC).isoformat(timespec='minutes')}; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}",
        f"- load average before / after: {load_before[0]:.1f} / {load_after[0]:.1f}",
        f"- command: `{cmd}`",
        f"- shingles: code-aware word 5-grams; 250 permutations = 25 bands x 10 rows; seed 42; 2 workers each; "
        f"ground-truth threshold J >= {args.threshold}; {args.random_pairs} random pairs added to the ground truth",
        "- recall = true pairs whose two files end in one duplicate cluster; direct = reported as a pair",
        "- ours is run file-level only (no repository level) so that every method sees the same task",
        "- datatrove: its signature + bucket stages (pairs read from the bucket stage); datatrove-full: also its "
        "cluster + filter stages, which write the deduplicated documents as ours does", "",
        "| scale | files | method | wall s | start-up s | files/s | peak RSS MB | pairs | precision | recall "
        "| direct recall | files removed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        startup = f"{r['startup']:.1f}" if r["startup"] is not None else "-"
        lines.append(f"| {r['scale']}x | {r['docs']} | {r['method']} | {r['seconds']:.1f} | {startup} | "
                     f"{r['docs_per_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['reported_pairs']} | "
                     f"{r['precision']:.4f} | {r['recall']:.4f} | {r['direct_recall']:.4f} | {r['docs_removed']} |")
    lines += ["", "## Ratios", ""]
    methods = sorted({m for m, _ in walls})
    for scale in args.scales:
        for peer in ("datatrove", "datatrove-full"):
            if (peer, scale) in walls:
                for m in methods:
                    if not m.startswith("datatrove") and (m, scale) in walls:
                        lines.append(f"- {scale}x: throughput {m} / {peer} = "
                                     f"{walls[(peer, scale)] / walls[(m, scale)]:.2f}x")
    base = min(args.scales)
    for m in methods:
        growth = ", ".join(f"{s // base}x corpus: {walls[(m, s)] / walls[(m, base)]:.2f}x time"
                           for s in args.scales if (m, s) in walls and s != base)
        if growth:
            lines.append(f"- wall-time growth, {m}: {growth}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
