"""End-to-end throughput of the two dataset stages on Spark local[2], on real repositories.

    python benchmarks/dataset_stage.py --packages json http email urllib xml logging --lake /tmp/ds-bench

Makes a curated snapshot from standard-library packages (one repository per package, real imports between
their files) plus the commits of a small hand-made repository, cuts a release of it (``python -m
spark_jobs.release``), then runs ``python -m spark_jobs.dataset.tokenizer`` and ``python -m
spark_jobs.dataset.build`` on the release exactly as the DAGs do (same CLI, a profile YAML written next to the
lake), and prints wall time, tokens per source and tokens/s of the build.
The peer comparison of the tokenize + pack core is ``benchmarks/dataset_pack.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pyarrow as pa

from lake.languages import language_of
from lake.schemas import COMMITS, FILES, file_id, sha256_hex
from lake.stage import Lake, Partition, StageRun

REPO = Path(__file__).resolve().parent.parent
STDLIB = Path(sysconfig.get_paths()["stdlib"])


def package_rows(package: str) -> list[dict]:
    repo = f"cpython/{package}"
    commit = sha256_hex(repo.encode())[:40]
    rows = []
    for path in sorted((STDLIB / package).rglob("*.py")):
        rel = str(path.relative_to(STDLIB))
        content = path.read_text(encoding="utf-8", errors="replace")
        data = content.encode()
        rows.append({"id": file_id(repo, commit, rel), "repo": repo, "commit": commit, "path": rel,
                     "language": language_of(rel) or "Python", "license": "PSF-2.0", "stars": 1000, "forks": 100,
                     "repo_created_at": None, "content": content, "sha256": sha256_hex(data),
                     "size_bytes": len(data), "num_lines": content.count("\n") + 1})
    return rows


def commits_for(rows: list[dict]) -> pa.Table:
    """One synthetic commit per repository: touches its first file (the crawl's real commits need GitHub)."""
    firsts: dict[str, dict] = {}
    for r in rows:
        firsts.setdefault(r["repo"], r)
    records = [{"repo": repo, "sha": sha256_hex(repo.encode())[:40], "parent_sha": None, "author_date": None,
                "message": f"Document the public API of {r['path']}", "readme": f"# {repo}\n",
                "tree": "\n".join(x["path"] for x in rows if x["repo"] == repo)[:4000],
                "changes": [{"path": r["path"], "status": "M", "diff": "+# documented\n", "truncated": False}]}
               for repo, r in sorted(firsts.items())]
    return pa.Table.from_pylist(records, schema=COMMITS)


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.quiet import MachineGuard, add_quiet_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packages", nargs="+", default=["json", "http", "email", "urllib", "xml", "logging"],
                        help="standard-library packages, one repository each")
    parser.add_argument("--lake", type=Path, required=True, help="lake root to create (must not exist)")
    parser.add_argument("--snapshot", default="bench", help="the snapshot, and the release cut from it")
    parser.add_argument("--vocab-size", type=int, default=8192)
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    guard = MachineGuard.from_args(args)
    if args.lake.exists():
        parser.error(f"--lake {args.lake} exists; give a fresh directory")
    lake = Lake.at(str(args.lake))
    rows = [r for p in args.packages for r in package_rows(p)]
    with StageRun(lake, args.snapshot, "quality_filter") as run:
        run.write_table("files", pa.Table.from_pylist(rows, schema=FILES), 0)
        run.stats.records_out = len(rows)
    with StageRun(lake, args.snapshot, "crawl") as run:
        run.write_table("commits", commits_for(rows), 0)
    cfg = args.lake.parent / f"{args.lake.name}.yaml"
    cfg.write_text(json.dumps({"profile": "local", "lake": {"root": str(args.lake)},
                               "spark": {"driver_memory": "2g", "shuffle_partitions": 4},
                               "stages": {"tokenizer": {"vocab_size": args.vocab_size},
                                          "dataset_build": {"seq_len": {"file_level": 2048, "repo_level": 32768,
                                                                        "commits": 8192}, "parts": 4}}}))
    env = {**os.environ, "SEEDCODER_CONFIG": str(cfg), "PYSPARK_PYTHON": sys.executable}
    size = sum(r["size_bytes"] for r in rows)
    print(f"curated: {len(rows)} files, {size / 1e6:.1f} MB in {len(args.packages)} repositories", flush=True)
    timings = {}
    steps = [("spark_jobs.release", ["--snapshots", args.snapshot]), ("spark_jobs.dataset.tokenizer", []),
             ("spark_jobs.dataset.build", [])]
    for module, extra in steps:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", module, "--release", args.snapshot, *extra], cwd=REPO, env=env,
                       check=True)
        timings[module] = time.perf_counter() - t0
        print(f"{module}: {timings[module]:.1f}s wall", flush=True)
    stats = lake.stats(Partition.release(args.snapshot), "dataset_build")
    tokens = sum(stats["metrics"]["tokens_per_source"].values())
    wall = timings["spark_jobs.dataset.build"]
    print(json.dumps({"tokens_per_source": stats["metrics"]["tokens_per_source"],
                      "stage_seconds": stats["seconds"], "wall_seconds": round(wall, 1),
                      "tokens_per_s_stage": round(tokens / stats["seconds"]), "drop_reasons": stats["drop_reasons"],
                      "repositories": stats["metrics"]["repositories"], "load_avg": os.getloadavg(),
                      "config": str(cfg)}, indent=2))
    print(guard.report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
