"""Fixtures of the dataset build: a small tokenizer trained on the standard library, and curated snapshots."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pyarrow as pa
import pytest

from lake.languages import language_of
from lake.schemas import FILES, file_id, sha256_hex
from lake.stage import Lake, StageRun

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def stdlib_texts(package: str, limit: int = 40) -> list[tuple[str, str]]:
    """(relative path, text) of real Python files, a real code corpus already on the machine."""
    files = sorted((STDLIB / package).rglob("*.py"))[:limit]
    return [(str(p.relative_to(STDLIB)), p.read_text(encoding="utf-8")) for p in files]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from spark_jobs.dataset.tokenizer import train

    texts = [t for pkg in ("json", "email", "http") for _p, t in stdlib_texts(pkg)]
    return train(iter(texts), vocab_size=1200)


def file_rows(repo: str, files: dict[str, str], *, stars: int = 10) -> list[dict]:
    commit = sha256_hex(repo.encode())[:40]
    rows = []
    for path, content in sorted(files.items()):
        data = content.encode()
        rows.append({"id": file_id(repo, commit, path), "repo": repo, "commit": commit, "path": path,
                     "language": language_of(path) or "Text", "license": "MIT", "stars": stars, "forks": 1,
                     "repo_created_at": None, "content": content, "sha256": sha256_hex(data),
                     "size_bytes": len(data), "num_lines": content.count("\n") + 1})
    return rows


def commit_files(lake: Lake, snapshot: str, stage: str, rows: list[dict], **extra_tables) -> None:
    with StageRun(lake, snapshot, stage) as run:
        run.write_table("files", pa.Table.from_pylist(rows, schema=FILES), 0)
        for name, table in extra_tables.items():
            run.write_table(name, table, 0)
        run.stats.records_out = len(rows)
