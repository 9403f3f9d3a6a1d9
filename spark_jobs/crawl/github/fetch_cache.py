"""The fetch cache in the lake: what was already downloaded, keyed by repository and commit SHA.

A repository's tarball is extracted once per (repository, SHA, file rules) and its result stored under
``{lake}/{cache_prefix}/tarballs/{rules fingerprint}/{repo}/{sha}.parquet``; commit data once per
(repository, head SHA, period, commit limits) under ``.../commits/``. The key is the index: a crawl of a later
snapshot, or the re-run of a killed one, reads the entry instead of downloading again. Only complete results
are stored (one atomic object write, after extraction succeeded), so a failure is retried by the next run.
Changing the file rules or the limits changes the fingerprint and so refetches, instead of serving stale
decisions.
"""

from __future__ import annotations

import hashlib
import io
import json
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq

from lake.schemas import COMMITS
from lake.storage import Storage

FORMAT_VERSION = "2"  # 2: COMMITS gained parents and changes_truncated

# One row per member that became a file ("file") or was refused ("reject").
TARBALL_ENTRIES = pa.schema([
    pa.field("repo", pa.string(), nullable=False),
    pa.field("commit", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("language", pa.string()),
    pa.field("content", pa.string()),
    pa.field("sha256", pa.string()),
    pa.field("size_bytes", pa.int64()),
    pa.field("num_lines", pa.int64()),
    pa.field("reason", pa.string()),
    pa.field("detail", pa.string()),
])


def fingerprint(*settings: object) -> str:
    """A short stable digest of the settings that shape a cached result.

    >>> fingerprint({"a": 1}) == fingerprint({"a": 1}) != fingerprint({"a": 2})
    True
    """
    text = json.dumps([FORMAT_VERSION, *settings], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _rejects_key(key: str) -> str:
    return key.removesuffix(".parquet") + ".rejects.json"


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


class FetchCache:
    def __init__(self, storage: Storage, prefix: str, tarball_fp: str, commits_fp: str):
        self.storage = storage
        self.prefix = prefix.strip("/")
        self.tarball_fp = tarball_fp
        self.commits_fp = commits_fp

    @staticmethod
    def _name(repo: str) -> str:
        return quote(repo, safe="")

    def tarball_key(self, repo: str, sha: str) -> str:
        return f"{self.prefix}/tarballs/{self.tarball_fp}/{self._name(repo)}/{sha}.parquet"

    def commits_key(self, repo: str, head: str, period: str) -> str:
        return f"{self.prefix}/commits/{self.commits_fp}/{self._name(repo)}/{period}-{head}.parquet"

    def has(self, key: str) -> bool:
        return self.storage.exists(key)

    def put_tarball(self, repo: str, sha: str, rows: list[dict]) -> str:
        key = self.tarball_key(repo, sha)
        self.storage.write_bytes(key, _parquet_bytes(pa.Table.from_pylist(rows, schema=TARBALL_ENTRIES)))
        return key

    def put_commits(self, repo: str, head: str, period: str, rows: list[dict], rejects: list[dict] = ()) -> str:
        """Commit records, and beside them the REJECTS rows of what was left out (written first: the parquet
        file is the entry's completion mark)."""
        key = self.commits_key(repo, head, period)
        if rejects:
            self.storage.write_bytes(_rejects_key(key), json.dumps(list(rejects), sort_keys=True).encode())
        self.storage.write_bytes(key, _parquet_bytes(pa.Table.from_pylist(rows, schema=COMMITS)))
        return key

    def commit_rejects(self, key: str) -> list[dict]:
        """The REJECTS rows stored with a commits entry (none for most repositories)."""
        side = _rejects_key(key)
        return json.loads(self.storage.read_bytes(side)) if self.storage.exists(side) else []

    def num_rows(self, key: str) -> int:
        return pq.ParquetFile(io.BytesIO(self.storage.read_bytes(key))).metadata.num_rows

    def read(self, key: str) -> pa.Table:
        return pq.read_table(io.BytesIO(self.storage.read_bytes(key)))
