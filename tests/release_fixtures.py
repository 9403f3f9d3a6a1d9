"""Test helper: commit a release directly (files, optional commits and scores, a manifest), as the cut would.

The dataset build and pretraining tests need a release to read without running the Spark cut; the cut itself is
tested in tests/spark_jobs/release/.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from lake import release as rel
from lake.stage import Lake, StageRun


def commit_release(lake: Lake, name: str, rows: list[dict], *, commits: pa.Table | None = None,
                   scores: pa.Table | None = None, tokenizer: str = "train", tokenizer_from: str | None = None,
                   tokenizer_sha256: str | None = None, base: str | None = None, snapshot: str = "s1") -> rel.Manifest:
    """Commit ``rows`` (FILES records; ``file_level`` / ``repo_level`` / ``snapshot`` default to True, True,
    ``snapshot``) as release ``name``."""
    files = [{"snapshot": snapshot, "file_level": True, "repo_level": True, **r} for r in rows]
    manifest = rel.Manifest(
        name=name, created_at=datetime.now(UTC).isoformat(timespec="seconds"), input_stage="quality_filter",
        snapshots=[rel.SnapshotEntry(snapshot=s, stage="quality_filter", attempt="test", committed_at="test",
                                     files=sum(f["snapshot"] == s for f in files))
                   for s in sorted({f["snapshot"] for f in files})],
        tokenizer=rel.TokenizerRef(policy=tokenizer, release=tokenizer_from or name, sha256=tokenizer_sha256),
        base_release=rel.BaseRelease(name=base, model=rel.model_uri(lake, base), tokenizer_sha256=None)
        if base else None,
        config={}, config_sha256=rel.config_sha256({}), counts={"files": len(files)})
    with StageRun(lake, rel.partition(name), rel.STAGE) as run:
        run.write_table("files", pa.Table.from_pylist(files, schema=rel.RELEASE_FILES), 0)
        if commits is not None:
            table = commits.append_column("snapshot", pa.array([snapshot] * commits.num_rows, pa.string()))
            run.write_table("commits", table.cast(rel.RELEASE_COMMITS), 0)
        if scores is not None:
            table = pa.table({"id": scores.column("id"), "score": scores.column("score").cast(pa.float32()),
                              "snapshot": pa.array([snapshot] * scores.num_rows, pa.string())})
            run.write_table("scores", table.cast(rel.RELEASE_SCORES), 0)
        run.write_bytes(rel.MANIFEST, manifest.to_json().encode())
        run.stats.records_out = len(files)
    return manifest
