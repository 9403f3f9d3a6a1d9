"""Test data for near dedup: FILES records made from real standard-library code, plus seeded near-duplicates."""

from __future__ import annotations

import json
import random
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from lake.schemas import FILES, file_id, sha256_hex
from lake.stage import Lake, StageRun

STDLIB = Path(json.__file__).resolve().parent.parent


def record(repo: str, path: str, content: str, *, stars: int = 1, forks: int = 0, license: str | None = "MIT",
           created: datetime | None = None) -> dict:
    return {"id": file_id(repo, "c0", path), "repo": repo, "commit": "c0", "path": path, "language": "Python",
            "license": license, "stars": stars, "forks": forks, "repo_created_at": created, "content": content,
            "sha256": sha256_hex(content.encode()), "size_bytes": len(content.encode()),
            "num_lines": content.count("\n")}


def stdlib_sources(count: int, offset: int = 0, max_bytes: int = 12_000) -> list[tuple[str, str]]:
    """Real, distinct Python files of moderate size (sorted, so every run picks the same ones)."""
    out = []
    for path in sorted((STDLIB / "json").glob("*.py")) + sorted((STDLIB / "email").glob("*.py")) + \
            sorted((STDLIB / "logging").glob("*.py")) + sorted(STDLIB.glob("[a-c]*.py")):
        text = path.read_text(encoding="utf-8")
        if 1500 < len(text) < max_bytes:
            out.append((str(path.relative_to(STDLIB)), text))
    return out[offset : offset + count]


def edit(text: str, rng: random.Random, strength: int = 2) -> str:
    """A near-duplicate: a comment edit, a renamed identifier and a deleted line or two."""
    lines = text.splitlines()
    for _ in range(strength):
        if len(lines) > 10:
            del lines[rng.randrange(len(lines))]
    lines.insert(rng.randrange(len(lines) + 1), "# edited copy")
    return "\n".join(lines).replace("self", "this", 1) + "\n"


def table(records: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(records, FILES)


def commit_input(lake: Lake, snapshot: str, records: list[dict], stage: str = "exact_dedup") -> None:
    with StageRun(lake, snapshot, stage) as run:
        run.write_table("files", table(records), 0)
        run.stats.records_in = run.stats.records_out = len(records)
