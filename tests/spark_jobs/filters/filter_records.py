"""Helpers of the filter tests: FILES records from (path, content), and an input stage committed with StageRun."""

from __future__ import annotations

import pyarrow as pa

from lake.languages import language_of
from lake.schemas import FILES, file_id, sha256_hex
from lake.stage import StageRun

SNAPSHOT = "2026-10"


def record(path: str, content: str, repo: str = "org/repo", language: str | None = None, **extra) -> dict:
    data = content.encode()
    row = {"id": file_id(repo, "c0ffee", path), "repo": repo, "commit": "c0ffee", "path": path,
           "language": language or language_of(path) or "Unknown", "license": "MIT", "stars": 3, "forks": 1,
           "repo_created_at": None, "content": content, "sha256": sha256_hex(data), "size_bytes": len(data),
           "num_lines": content.count("\n")}
    row.update(extra)
    return row


def commit_input(lake, parts: list[list[dict]], stage: str = "near_dedup", snapshot: str = SNAPSHOT) -> None:
    """Commit ``parts`` (one parquet part each) as ``stage``'s `files`, as the upstream stage would."""
    with StageRun(lake, snapshot, stage) as run:
        for index, rows in enumerate(parts):
            run.write_table("files", pa.Table.from_pylist(rows, schema=FILES), index)
            run.stats.records_out += len(rows)
