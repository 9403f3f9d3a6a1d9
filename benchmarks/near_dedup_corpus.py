"""The near-dedup benchmark corpus: real Python code on this machine plus seeded near-duplicates.

Real code: the standard libraries of every Python installed on the machine (this one's, pyenv's other versions,
the system's) and the packages of both virtual environments (.venv, .venv-gpu). They hold natural
near-duplicates: the same module at several Python versions, the same package at two versions in the two
environments, vendored copies (pip's vendored libraries), near-identical test files. A file is sampled by the hash of its path *inside its package*,
so a file sampled from one environment is sampled from the other too, and larger scales contain the smaller ones.
Byte-identical copies are dropped first (exact dedup runs before near dedup in the pipeline).

Seeded near-duplicates of a fraction of the files: identifier renames, comment and whitespace edits, line inserts
and deletes, licence-header swaps (each copy in its own repository, so repository-level dedup leaves them to the
file level).

    python -m benchmarks.near_dedup_corpus --docs 2000 --out /tmp/nd-corpus-1x.parquet
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import random
import re
import sys
import sysconfig
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from xxhash import xxh64_intdigest

from lake.config import REPO_ROOT
from lake.schemas import FILES, file_id

log = logging.getLogger("near_dedup_corpus")
MIN_BYTES, MAX_BYTES = 1_000, 40_000
LICENCES = [
    "# Copyright (c) {year} The Authors. Licensed under the MIT License.\n",
    "# SPDX-License-Identifier: Apache-2.0\n# Copyright {year} Example Corp.\n",
    "# This file is part of a BSD-3-Clause licensed project ({year}).\n",
]


def source_roots() -> list[tuple[str, Path]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    roots = [("stdlib", stdlib)]
    # The standard libraries of the other Python versions installed beside this one (pyenv's, the system's): the
    # same modules at several versions, natural near-duplicates of each other.
    others = {*stdlib.parent.parent.parent.glob("*/lib/python3.*"), *Path("/usr/lib").glob("python3.*")}
    for other in sorted(others):
        if other.is_dir() and other.resolve() != stdlib.resolve():
            roots.append((f"stdlib-{other.parent.parent.name}-{other.name}", other))
    for tag, venv in (("venv", REPO_ROOT / ".venv"), ("venvgpu", REPO_ROOT / ".venv-gpu")):
        site = next(iter(sorted(venv.glob("lib/python3*/site-packages"))), None)
        if site:
            roots.append((tag, site))
    return roots


# Source files of other languages on the machine (C/C++ headers of the system, Node and CUDA; JavaScript of the
# global npm packages and of the venvs' packages; Rust of the toolchain), so the corpus is not Python only.
LANGUAGES = {".py": "Python", ".js": "JavaScript", ".ts": "TypeScript", ".c": "C", ".h": "C", ".cc": "C++",
             ".cpp": "C++", ".hpp": "C++", ".cuh": "C++", ".rs": "Rust", ".go": "Go", ".java": "Java"}
EXTRA_ROOTS = [("include", Path("/usr/include")), ("npm", Path("/usr/lib/node_modules")),
               *((f"cuda-{p.name}", p / "include") for p in sorted(Path("/usr/local").glob("cuda*"))),
               ("rust", Path.home() / ".rustup" / "toolchains")]


def candidate_files() -> list[tuple[str, str, Path]]:
    """(repo, path inside the repo, file) for every source file of a usable size, in a fixed order."""
    out = []
    roots = source_roots() + [(tag, root) for tag, root in EXTRA_ROOTS if root.is_dir()]
    for tag, root in roots:
        for file in sorted(root.rglob("*")):
            if file.suffix not in LANGUAGES or file.is_symlink():
                continue
            rel = file.relative_to(root)
            if len(rel.parts) < 2 or "site-packages" in rel.parts:
                continue
            try:
                size = file.stat().st_size
            except OSError:
                continue
            if MIN_BYTES <= size <= MAX_BYTES:
                out.append((f"{tag}/{rel.parts[0]}", "/".join(rel.parts[1:]), file))
    return out


def sample(files, docs: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """About ``docs`` distinct-content files chosen by path-in-package hash (nested across sizes)."""
    ranked = sorted(files, key=lambda f: (xxh64_intdigest(f"{f[0].split('/', 1)[1]}/{f[1]}".encode(), seed), f[0], f[1]))
    seen, out = set(), []
    for repo, path, file in ranked:
        try:
            text = file.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        digest = hashlib.sha256(text.encode()).digest()
        if digest in seen:
            continue
        seen.add(digest)
        out.append((repo, path, text))
        if len(out) >= docs:
            break
    return out


def rename_identifier(text: str, rng: random.Random) -> str:
    names = sorted(set(re.findall(r"\b[a-z_][a-z0-9_]{3,}\b", text)))
    if not names:
        return text
    old = rng.choice(names)
    return re.sub(rf"\b{old}\b", old + "_renamed", text)


def comment_whitespace(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    for _ in range(3):
        i = rng.randrange(len(lines) + 1)
        lines.insert(i, "    " * rng.randint(0, 2) + "# note: reviewed")
    return "\n".join(line.rstrip() + (" " if rng.random() < 0.2 else "") for line in lines) + "\n"


def insert_delete_lines(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    for _ in range(max(1, len(lines) // 40)):
        if len(lines) > 5:
            del lines[rng.randrange(len(lines))]
        lines.insert(rng.randrange(len(lines) + 1), f"_unused_{rng.randrange(10**6)} = None")
    return "\n".join(lines) + "\n"


def licence_swap(text: str, rng: random.Random) -> str:
    body = text.split("\n", 3)[-1] if text.startswith("#") else text
    return rng.choice(LICENCES).format(year=rng.randint(2010, 2025)) + body


EDITS = (rename_identifier, comment_whitespace, insert_delete_lines, licence_swap)


def build(docs: int, seeded_fraction: float = 0.15, seed: int = 0) -> pa.Table:
    base = sample(candidate_files(), docs, seed)
    rng = random.Random(seed)
    rows = [_record(repo, path, text, stars=xxh64_intdigest(repo.encode()) % 1000) for repo, path, text in base]
    for n, (_, path, text) in enumerate(base):
        if rng.random() < seeded_fraction:
            edit = EDITS[n % len(EDITS)]
            rows.append(_record(f"seeded/{edit.__name__}-{n}", path, edit(text, rng), stars=rng.randrange(1000)))
    log.info("corpus: %d real files, %d seeded near-duplicates", len(base), len(rows) - len(base))
    return pa.Table.from_pylist(rows, FILES)


def _record(repo: str, path: str, text: str, stars: int) -> dict:
    data = text.encode()
    language = LANGUAGES.get(Path(path).suffix, "Python")
    return {"id": file_id(repo, "bench", path), "repo": repo, "commit": "bench", "path": path, "language": language,
            "license": "MIT", "stars": stars, "forks": 0, "repo_created_at": None, "content": text,
            "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data), "num_lines": text.count("\n")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000, help="real files to sample (seeded copies come on top)")
    parser.add_argument("--seeded-fraction", type=float, default=0.15, help="share of files given a near-copy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="parquet file to write (FILES schema)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    table = build(args.docs, args.seeded_fraction, args.seed)
    pq.write_table(table, args.out, row_group_size=256)  # splittable between Spark tasks
    log.info("wrote %d files (%.1f MB of code) to %s", table.num_rows,
             sum(table.column("size_bytes").to_pylist()) / 1e6, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
