"""Near dedup side by side: rensa (Rust MinHash + LSH), datasketch MinHashLSH, datatrove, and ours (Spark, one process).

Same corpus (``benchmarks/near_dedup_corpus.py``), same shingles, permutations, bands and seed, 2 workers each;
every method runs in its own process (``benchmarks/near_dedup_peers.py``) whose process tree's resident memory is
sampled every 0.2 s for the peak and the CPU time (user + system of every process of the tree, the JVM and its
Python workers included; CPU seconds compare better than wall time on a machine others are loading).

Ground truth (``benchmarks/near_dedup_truth.py``): every pair of files of Jaccard >= t over their shingle strings,
exactly (all pairs, prefix-filtered, verified by set intersection). For the held-out corpus it is computed once on
the base corpus: a disguised copy keeps every within-copy Jaccard, so the truth at scale k is k copies of it, and a
reported pair across copies is checked on its own contents. Reported per method: pair precision (reported pairs
with J >= t), pair recall (true pairs that end in one duplicate cluster) and direct recall (reported), document
recall (files of a true pair that end in a cluster with one of their true partners), files removed (cluster members
beyond one per cluster), files/s (Spark start-up excluded and shown separately), CPU seconds, peak memory, each
phase's wall time, and the growth of wall time with the corpus.

    python -m benchmarks.near_dedup_bench --corpus heldout --docs 28000 --scales 1 2 4 8 --methods rensa spark local
    python -m benchmarks.near_dedup_bench --docs 10500 --scales 1 2 4 --methods datatrove spark local   # issue #4's
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.near_dedup_corpus import SOURCES, build, copy_of, write_scaled
from benchmarks.near_dedup_truth import set_jaccard, shingle_sets, similar_pairs
from benchmarks.quiet import MachineGuard, add_quiet_arguments
from lake.config import REPO_ROOT
from lake.schemas import file_id
from spark_jobs.near_dedup.graph import connected_components

log = logging.getLogger("near_dedup_bench")
ROW_GROUP_ROWS = 256
PEER_PYTHON = REPO_ROOT / ".venv-bench" / "bin" / "python"
OUR_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
PYTHONS = {"rensa": PEER_PYTHON, "datasketch": PEER_PYTHON, "datatrove": PEER_PYTHON, "datatrove-full": PEER_PYTHON,
           "spark": OUR_PYTHON, "local": OUR_PYTHON, "spark-noverify": OUR_PYTHON}
NEEDS_SHARDS = {"datasketch", "datatrove", "datatrove-full"}  # methods that read JSONL shards
PEER_INSTALL = (".venv-bench: python3.11 -m venv .venv-bench && .venv-bench/bin/pip install rensa==0.5.0 pyarrow "
                "datatrove==0.10.1 datasketch==2.0.0 xxhash regex tokenizers orjson")


def write_corpus(table, scale: int, folder: Path, shards: bool) -> None:
    """``folder/files.parquet`` (row groups of ROW_GROUP_ROWS files, so Spark splits it between its 2 tasks as the
    peers get 2 workers) and, for the JSONL readers, two shards."""
    folder.mkdir(parents=True, exist_ok=True)
    write_scaled(table, scale, folder / "files.parquet")
    if shards:
        rows = pq.read_table(folder / "files.parquet", columns=["id", "content"]).to_pylist()
        for shard in range(2):
            with (folder / f"shard-{shard:05d}.jsonl").open("w") as f:
                for row in rows[shard::2]:
                    f.write(json.dumps({"id": row["id"], "text": row["content"]}) + "\n")


class Truth:
    """All true pairs of a corpus, and the exact Jaccard of any pair of its files."""

    def __init__(self, ids: list[str], contents: list[str], threshold: float):
        self.threshold = threshold
        self.ids = ids
        self.row = {i: n for n, i in enumerate(ids)}
        t0 = time.perf_counter()
        self.values, self.offsets = shingle_sets(contents)
        self.pairs = similar_pairs(self.values, self.offsets, threshold)
        log.info("ground truth: %d files, %d pairs of Jaccard >= %.2f (%.0f s)", len(ids), len(self.pairs),
                 threshold, time.perf_counter() - t0)

    def jaccard(self, a: str, b: str) -> float:
        x, y = sorted((self.row[a], self.row[b]))
        known = self.pairs.get((x, y))
        return known if known is not None else set_jaccard(self.values, self.offsets, x, y)


class ScaledTruth:
    """The base corpus's truth mapped onto a corpus of disguised copies (``near_dedup_corpus.disguise``)."""

    def __init__(self, base: Truth, base_meta: list[tuple[str, str]], corpus: Path):
        self.base = base
        meta = pq.read_table(corpus, columns=["id", "repo", "path"]).to_pylist()
        base_row = {file_id(repo, "bench", path): n for n, (repo, path) in enumerate(base_meta)}
        self.where: dict[str, tuple[int, int]] = {}  # id -> (copy, base row)
        ids_of: dict[tuple[int, int], str] = {}
        for r in meta:
            copy, repo = copy_of(r["repo"])
            row = base_row[file_id(repo, "bench", r["path"])]
            self.where[r["id"]] = (copy, row)
            ids_of[(copy, row)] = r["id"]
        copies = 1 + max((c for c, _ in self.where.values()), default=0)
        self.true_pairs = {tuple(sorted((ids_of[(c, a)], ids_of[(c, b)]))) for c in range(copies)
                           for a, b in base.pairs}
        self.corpus = corpus
        self.threshold = base.threshold

    def jaccard_all(self, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], float]:
        out, across = {}, []
        for a, b in pairs:
            (ca, ra), (cb, rb) = self.where[a], self.where[b]
            if ca == cb:
                out[(a, b)] = self.base.jaccard(self.base.ids[ra], self.base.ids[rb])
            else:
                across.append((a, b))
        if across:  # pairs across copies: their own contents
            wanted = sorted({i for p in across for i in p})
            table = pq.read_table(self.corpus, columns=["id", "content"])
            table = table.filter(pc.is_in(table.column("id"), value_set=pa.array(wanted)))
            values, offsets = shingle_sets(table.column("content").to_pylist())
            row = {i: n for n, i in enumerate(table.column("id").to_pylist())}
            for a, b in across:
                out[(a, b)] = set_jaccard(values, offsets, row[a], row[b])
        return out


def score(pairs: list[tuple[str, str]], true_pairs: set, jaccard: dict, threshold: float) -> dict:
    reported = set(pairs)
    comp = connected_components([], reported)
    connected = {p for p in true_pairs if p[0] in comp and p[1] in comp and comp[p[0]] == comp[p[1]]}
    true_docs = {d for p in true_pairs for d in p}
    found_docs = {d for p in connected for d in p}
    return {"reported_pairs": len(reported),
            "precision": sum(jaccard[p] >= threshold for p in reported) / len(reported) if reported else 1.0,
            "recall": len(connected) / len(true_pairs) if true_pairs else 1.0,
            "direct_recall": len(reported & true_pairs) / len(true_pairs) if true_pairs else 1.0,
            "doc_recall": len(found_docs) / len(true_docs) if true_docs else 1.0,
            "docs_removed": len(comp) - len(set(comp.values())), "true_pairs": len(true_pairs)}


def run_method(method: str, corpus: Path, work: Path, timeout: int, reuse: bool = False) -> dict:
    out = work / f"{method}.json"
    if reuse and out.exists():
        result = json.loads(out.read_text())
        if "peak_rss_mb" in result:  # a finished run measured by this script (older files lack the measurements)
            log.info("reusing %s (--reuse)", out)
            result["pairs"] = [tuple(p) for p in result["pairs"]]
            return result
    cmd = [str(PYTHONS[method]), str(REPO_ROOT / "benchmarks" / "near_dedup_peers.py"), method,
           "--corpus", str(corpus), "--work", str(work / method), "--out", str(out)]
    log.info("running %s", " ".join(cmd))
    env = dict(os.environ, PYSPARK_PYTHON=str(PYTHONS[method]), PYSPARK_DRIVER_PYTHON=str(PYTHONS[method]))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(work / f"{method}.log", "w"))
    peak, t0 = 0, time.perf_counter()
    cpu: dict[int, float] = {}  # pid -> user + system seconds last seen (the JVM and Python workers included)
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            for p in tree:
                times = p.cpu_times()
                cpu[p.pid] = times.user + times.system
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
    result["cpu_seconds"] = sum(cpu.values())
    out.write_text(json.dumps(result))  # with the measurements, so that --reuse can take it
    result["pairs"] = [tuple(p) for p in result["pairs"]]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=["stdlib", "heldout"], default="stdlib",
                        help="stdlib: #4's corpus, scaled by sampling more files; heldout: large Java/Go/Rust "
                             "files (+ the stdlib pool), scaled by disguised copies (benchmarks/near_dedup_corpus.py)")
    parser.add_argument("--docs", type=int, default=1000, help="real files at scale 1 (seeded copies on top)")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--methods", nargs="+", default=["rensa", "spark", "local"], choices=sorted(PYTHONS))
    parser.add_argument("--threshold", type=float, default=0.8, help="Jaccard threshold of the ground truth")
    parser.add_argument("--sources", type=Path, default=SOURCES / "root", help="the unpacked held-out packages")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/near-dedup-bench"))
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per method run")
    parser.add_argument("--out", type=Path, default=None,
                        help="markdown file to write the results to (rewritten after every scale)")
    parser.add_argument("--reuse", action="store_true",
                        help="take a method's finished result from an earlier run in the same --workdir instead "
                             "of running it again (after a later method or scale failed)")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    missing = [m for m in args.methods if not PYTHONS[m].exists()]
    if missing:
        parser.error(f"{missing} need {PEER_INSTALL}")
    guard = MachineGuard.from_args(args)
    rows_out, walls, phases = [], {}, {}
    base_truth = base_table = None
    if args.corpus == "heldout":
        base_table = build(args.docs, corpus="heldout", sources=args.sources)
        base_truth = Truth(base_table.column("id").to_pylist(), base_table.column("content").to_pylist(),
                           args.threshold)
        base_meta = list(zip(base_table.column("repo").to_pylist(), base_table.column("path").to_pylist(),
                             strict=True))
    for scale in args.scales:
        folder = args.workdir / f"x{scale}"
        shards = bool(NEEDS_SHARDS & set(args.methods))
        if base_table is not None:
            write_corpus(base_table, scale, folder / "corpus", shards)
        else:
            write_corpus(build(args.docs * scale), 1, folder / "corpus", shards)
        corpus = folder / "corpus" / "files.parquet"
        sizes = pq.read_table(corpus, columns=["size_bytes"]).column("size_bytes")
        files, megabytes = len(sizes), pc.sum(sizes).as_py() / 1e6
        results = {m: run_method(m, folder / "corpus", folder, args.timeout, args.reuse) for m in args.methods}
        reported = {p for r in results.values() for p in r["pairs"]}
        if base_truth is not None:
            truth = ScaledTruth(base_truth, base_meta, corpus)
            true_pairs, jaccard = truth.true_pairs, truth.jaccard_all(reported)
        else:
            table = pq.read_table(corpus, columns=["id", "content"])
            flat = Truth(table.column("id").to_pylist(), table.column("content").to_pylist(), args.threshold)
            true_pairs = {(flat.ids[a], flat.ids[b]) for a, b in flat.pairs}
            jaccard = {p: flat.jaccard(*p) for p in reported}
        for method, res in results.items():
            s = score(res["pairs"], true_pairs, jaccard, args.threshold)
            walls[(method, scale)] = res["seconds"]
            phases[(method, scale)] = res.get("phases", {})
            rows_out.append({"scale": scale, "docs": files, "mb": megabytes, "method": method,
                             "seconds": res["seconds"], "startup": res.get("startup_seconds"),
                             "workers": res.get("python_workers_seconds"),
                             "docs_per_s": files / res["seconds"], "cpu": res["cpu_seconds"],
                             "peak_rss_mb": res["peak_rss_mb"], **s})
            log.info("%s", rows_out[-1])
        if args.out:  # what is measured so far survives a failure at a larger scale
            args.out.write_text(render(rows_out, walls, phases, args, guard))
    report = render(rows_out, walls, phases, args, guard)
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


def render(rows, walls, phases, args, guard: MachineGuard) -> str:
    cmd = "python -m benchmarks.near_dedup_bench " + " ".join(sys.argv[1:])
    lines = [
        f"# Near dedup ({args.corpus} corpus): {', '.join(args.methods)}", "",
        f"- {guard.report().lstrip('# ')}",
        f"- command: `{cmd}`",
        f"- shingles: code-aware word 5-grams; 250 permutations = 25 bands x 10 rows; seed 42; 2 workers each; "
        f"ground truth: every pair of Jaccard >= {args.threshold} (exact, all pairs)",
        "- pair recall = true pairs whose two files end in one duplicate cluster; direct = reported as a pair; "
        "doc recall = files of a true pair that end in a cluster with a true partner",
        "- ours is run file-level only (no repository level) so that every method sees the same task; Spark: the "
        "local profile (local[2], 4 GB driver), start-up (session, first job, start of the Python workers: "
        "py workers s) shown apart; numba kernels loaded from their cache before the clock starts",
        "- rensa: R-MinHash sketches on 2 processes + its LSH; pairs = LSH candidates whose rensa estimate is >= "
        "the threshold (it does not verify)", "",
        "| scale | files | MB | method | wall s | start-up s | py workers s | files/s | CPU s | peak RSS MB | pairs "
        "| precision | pair recall | direct recall | doc recall | files removed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        startup = f"{r['startup']:.1f}" if r["startup"] is not None else "-"
        workers = f"{r['workers']:.1f}" if r.get("workers") is not None else "-"
        lines.append(f"| {r['scale']}x | {r['docs']} | {r['mb']:.0f} | {r['method']} | {r['seconds']:.1f} | "
                     f"{startup} | {workers} | {r['docs_per_s']:.1f} | {r['cpu']:.0f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['reported_pairs']} | {r['precision']:.4f} | {r['recall']:.4f} | {r['direct_recall']:.4f} | "
                     f"{r['doc_recall']:.4f} | {r['docs_removed']} |")
    lines += ["", "## Phases (wall s)", ""]
    for (method, scale), seconds in sorted(phases.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if seconds:
            lines.append(f"- {scale}x {method}: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    lines += ["", "## Ratios", ""]
    workers = {(r["method"], r["scale"]): r.get("workers") for r in rows}
    methods = sorted({m for m, _ in walls})
    for scale in args.scales:
        for peer in ("rensa", "datatrove", "datatrove-full"):
            if (peer, scale) in walls:
                for m in methods:
                    if m in PYTHONS and PYTHONS[m] == OUR_PYTHON and (m, scale) in walls:
                        lines.append(f"- {scale}x: throughput {m} / {peer} = "
                                     f"{walls[(peer, scale)] / walls[(m, scale)]:.2f}x")
                        if workers.get((m, scale)):  # the Python workers' start counted in the job instead
                            lines.append(f"- {scale}x: throughput {m} / {peer} with the Python workers' start = "
                                         f"{walls[(peer, scale)] / (walls[(m, scale)] + workers[(m, scale)]):.2f}x")
    base = min(args.scales)
    for m in methods:
        growth = ", ".join(f"{s // base}x corpus: {walls[(m, s)] / walls[(m, base)]:.2f}x time"
                           for s in args.scales if (m, s) in walls and s != base)
        if growth:
            lines.append(f"- wall-time growth, {m}: {growth}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
