"""The near-dedup benchmark corpora: real code plus seeded near-duplicates.

Two corpora. ``stdlib`` (issue #4): Python, C/C++ headers and JavaScript found on this machine, files of 1-40 KB,
scaled by sampling more files. ``heldout`` (issue #19): large real files of other languages, the JDK's ``src.zip``
(Java), Go's standard library and Rust's library and compiler sources, from the Debian packages
``openjdk-17-source``, ``golang-1.19-src`` and ``rust-src`` (downloaded and unpacked into a folder with
``--fetch-sources``, nothing installed), then the ``stdlib`` pool, files of 200 B to 1 MB (the crawl's
``max_file_bytes``); scaled by disguised copies (``disguise``): copy k maps every ASCII letter and digit through
a permutation drawn from k, so token boundaries, sizes and every within-copy Jaccard stay exactly those of the
original while copies share almost no shingle with each other, and the ground truth at scale k is k copies of the
ground truth at 1x.

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
    python -m benchmarks.near_dedup_corpus --fetch-sources          # once: the held-out sources (apt-get download)
    python -m benchmarks.near_dedup_corpus --corpus heldout --docs 32000 --scale 2 --out /tmp/nd-heldout-2x.parquet
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import random
import re
import string
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from xxhash import xxh64_intdigest

from lake.config import REPO_ROOT
from lake.schemas import FILES, file_id

log = logging.getLogger("near_dedup_corpus")
MIN_BYTES, MAX_BYTES = 1_000, 40_000  # the stdlib corpus
HELDOUT_MIN_BYTES, HELDOUT_MAX_BYTES = 200, 1_000_000  # the held-out corpus (the crawl's max_file_bytes)
SOURCES = REPO_ROOT / ".work" / "bench-sources"  # where --fetch-sources unpacks the held-out packages
HELDOUT_PACKAGES = ["openjdk-17-source", "golang-1.19-src", "rust-src"]
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


def candidate_files(min_bytes: int = MIN_BYTES, max_bytes: int = MAX_BYTES) -> list[tuple[str, str, Path]]:
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
            if min_bytes <= size <= max_bytes:
                out.append((f"{tag}/{rel.parts[0]}", "/".join(rel.parts[1:]), file))
    return out


def _rank(files, seed: int):
    return sorted(files, key=lambda f: (xxh64_intdigest(f"{f[0].split('/', 1)[1]}/{f[1]}".encode(), seed), f[0], f[1]))


def sample(files, docs: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """About ``docs`` distinct-content files chosen by path-in-package hash (nested across sizes).

    ``files``: (repo, path, file) where file is a Path or a function returning the file's bytes.
    """
    seen, out = set(), []
    for repo, path, file in files if isinstance(files, _Ranked) else _rank(files, seed):
        try:
            text = (file() if callable(file) else file.read_bytes()).decode("utf-8")
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


class _Ranked(list):
    """Files already in sampling order (several pools, each ranked on its own, one after the other)."""


def fetch_sources(dest: Path = SOURCES) -> Path:
    """Download the held-out packages with ``apt-get download`` and unpack them under ``dest/root`` (no install)."""
    debs = dest / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *HELDOUT_PACKAGES], cwd=debs, check=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest / "root")], check=True)
    return dest / "root"


def _zip_reader(archive: zipfile.ZipFile, name: str) -> Callable[[], bytes]:
    return lambda: archive.read(name)


def heldout_files(root: Path = SOURCES / "root") -> list[tuple[str, str, Callable[[], bytes] | Path]]:
    """(repo, path, reader) of every Java, Go and Rust source file of a usable size under the unpacked packages.

    Repositories: the JDK's modules (``jdk/java.base``), Go's top-level packages (``go/net``), Rust's library and
    compiler crates (``rust/core``, ``rust/rustc_middle``).
    """
    zips = sorted(root.glob("usr/lib/jvm/*/lib/src.zip"))
    go = sorted(root.glob("usr/share/go-*/src"))
    rust = sorted(root.glob("usr/src/rustc-*/library")) + sorted(root.glob("usr/src/rustc-*/compiler"))
    if not (zips and go and rust):
        raise FileNotFoundError(f"held-out sources not found under {root} (JDK src.zip: {len(zips)}, Go: {len(go)}, "
                                f"Rust: {len(rust)}): run python -m benchmarks.near_dedup_corpus --fetch-sources")
    out: list = []
    archive = zipfile.ZipFile(zips[-1])
    for info in sorted(archive.infolist(), key=lambda i: i.filename):
        parts = info.filename.split("/")
        if info.filename.endswith(".java") and len(parts) > 2 and \
                HELDOUT_MIN_BYTES <= info.file_size <= HELDOUT_MAX_BYTES:
            out.append((f"jdk/{parts[0]}", "/".join(parts[1:]), _zip_reader(archive, info.filename)))
    for tag, folder, suffix in [("go", go[-1], ".go"), *(("rust", r, ".rs") for r in rust)]:
        for file in sorted(folder.rglob(f"*{suffix}")):
            rel = file.relative_to(folder)
            if len(rel.parts) > 1 and not file.is_symlink() and \
                    HELDOUT_MIN_BYTES <= file.stat().st_size <= HELDOUT_MAX_BYTES:
                out.append((f"{tag}/{rel.parts[0]}", "/".join(rel.parts[1:]), file))
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


def build(docs: int, seeded_fraction: float = 0.15, seed: int = 0, corpus: str = "stdlib",
          sources: Path = SOURCES / "root") -> pa.Table:
    """``docs`` real files (+ seeded near-copies) of the ``stdlib`` or the ``heldout`` corpus (see the module doc).

    The held-out corpus takes the Java / Go / Rust files first (in path-hash order), then the stdlib pool's files of
    200 B - 1 MB, so that its first ~26k files are all large-file languages.
    """
    if corpus == "heldout":
        pools = [heldout_files(sources), candidate_files(HELDOUT_MIN_BYTES, HELDOUT_MAX_BYTES)]
        base = sample(_Ranked(f for pool in pools for f in _rank(pool, seed)), docs, seed)
    else:
        base = sample(candidate_files(), docs, seed)
    rng = random.Random(seed)
    rows = [_record(repo, path, text, stars=xxh64_intdigest(repo.encode()) % 1000) for repo, path, text in base]
    for n, (_, path, text) in enumerate(base):
        if rng.random() < seeded_fraction:
            edit = EDITS[n % len(EDITS)]
            rows.append(_record(f"seeded/{edit.__name__}-{n}", path, edit(text, rng), stars=rng.randrange(1000)))
    log.info("corpus: %d real files, %d seeded near-duplicates", len(base), len(rows) - len(base))
    return pa.Table.from_pylist(rows, FILES)


def _cipher(copy: int) -> dict[int, int]:
    """A permutation of the ASCII letters (within case) and digits, drawn from ``copy`` (0: the identity)."""
    rng = random.Random(f"disguise-{copy}")
    table: dict[int, int] = {}
    for alphabet in (string.ascii_lowercase, string.ascii_uppercase, string.digits):
        shuffled = list(alphabet)
        if copy:
            rng.shuffle(shuffled)
        table.update({ord(a): ord(b) for a, b in zip(alphabet, shuffled, strict=True)})
    return table


def disguise(text: str, copy: int) -> str:
    """Copy ``copy`` of a text: letters and digits mapped through a per-copy permutation, everything else kept.

    Word bytes stay word bytes and punctuation stays punctuation, so the tokens (``shingles.tokens``) keep their
    boundaries and lengths and are mapped one-to-one: the Jaccard of two texts equals that of their copies.

    >>> disguise("int x1 = a[0];", 0)
    'int x1 = a[0];'
    >>> len(disguise("naïve_x += 42", 3)) == len("naïve_x += 42")
    True
    """
    return text.translate(_cipher(copy)) if copy else text


def scaled_batches(base: pa.Table, copies: int, rows_per_batch: int = 2048) -> Iterator[pa.Table]:
    """The base corpus then ``copies - 1`` disguised copies of it, in batches (``repo`` prefixed ``copyK/``)."""
    for copy in range(copies):
        for start in range(0, base.num_rows, rows_per_batch):
            batch = base.slice(start, rows_per_batch)
            if copy == 0:
                yield batch
                continue
            rows = batch.to_pylist()
            yield pa.Table.from_pylist([_record(f"copy{copy}/{r['repo']}", r["path"], disguise(r["content"], copy),
                                                r["stars"]) for r in rows], FILES)


def copy_of(repo: str) -> tuple[int, str]:
    """(copy number, the base corpus's repository) of a scaled corpus's repository.

    >>> copy_of("copy3/jdk/java.base"), copy_of("jdk/java.base")
    ((3, 'jdk/java.base'), (0, 'jdk/java.base'))
    """
    if repo.startswith("copy") and "/" in repo and repo.split("/", 1)[0][4:].isdigit():
        head, rest = repo.split("/", 1)
        return int(head[4:]), rest
    return 0, repo


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
    parser.add_argument("--corpus", choices=["stdlib", "heldout"], default="stdlib", help="which corpus (module doc)")
    parser.add_argument("--scale", type=int, default=1, help="heldout: the base plus scale - 1 disguised copies")
    parser.add_argument("--sources", type=Path, default=SOURCES / "root", help="the unpacked held-out packages")
    parser.add_argument("--fetch-sources", action="store_true",
                        help=f"apt-get download {' '.join(HELDOUT_PACKAGES)} and unpack them under {SOURCES}, then exit")
    parser.add_argument("--out", help="parquet file to write (FILES schema)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.fetch_sources:
        log.info("held-out sources unpacked under %s", fetch_sources(args.sources.parent))
        return 0
    if not args.out:
        parser.error("--out is required")
    table = build(args.docs, args.seeded_fraction, args.seed, args.corpus, args.sources)
    write_scaled(table, args.scale, Path(args.out))
    return 0


def write_scaled(base: pa.Table, scale: int, out: Path) -> None:
    """The scaled corpus as one Parquet file of small row groups (splittable between Spark tasks)."""
    files = size = 0
    with pq.ParquetWriter(out, FILES) as writer:
        for batch in scaled_batches(base, scale):
            writer.write_table(batch, row_group_size=256)
            files, size = files + batch.num_rows, size + pc.sum(batch.column("size_bytes")).as_py()
    log.info("wrote %d files (%.1f MB of code, %dx) to %s", files, size / 1e6, scale, out)


if __name__ == "__main__":
    sys.exit(main())
