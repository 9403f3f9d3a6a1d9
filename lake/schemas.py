"""Record schemas of the lake, as pyarrow schemas (Spark schemas are derived from these).

Every file record carries its lineage (repository, commit, path, licence, stars, language, content SHA256),
and its id is derived from location and content, never from run order: ``file_id(repo, commit, path)``.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

# One source file of one repository at one commit.
FILES = pa.schema([
    pa.field("id", pa.string(), nullable=False),          # sha256(repo \0 commit \0 path), hex
    pa.field("repo", pa.string(), nullable=False),        # owner/name (local source: the folder name)
    pa.field("commit", pa.string(), nullable=False),      # commit SHA (local source: content-derived tree id)
    pa.field("path", pa.string(), nullable=False),        # '/'-separated, relative to the repository root
    pa.field("language", pa.string(), nullable=False),    # from the file extension / well-known name
    pa.field("license", pa.string()),                     # SPDX id of the repository licence, None if unknown
    pa.field("stars", pa.int64(), nullable=False),
    pa.field("forks", pa.int64(), nullable=False),
    pa.field("repo_created_at", TS),                      # for the "earliest" tie-break of the keep rule
    pa.field("content", pa.string(), nullable=False),     # UTF-8 text
    pa.field("sha256", pa.string(), nullable=False),      # of the UTF-8 content bytes, hex
    pa.field("size_bytes", pa.int64(), nullable=False),
    pa.field("num_lines", pa.int64(), nullable=False),
])

# One repository of a snapshot.
REPOS = pa.schema([
    pa.field("repo", pa.string(), nullable=False),
    pa.field("commit", pa.string(), nullable=False),
    pa.field("license", pa.string()),
    pa.field("stars", pa.int64(), nullable=False),
    pa.field("forks", pa.int64(), nullable=False),
    pa.field("repo_created_at", TS),
    pa.field("num_files", pa.int64(), nullable=False),
    pa.field("size_bytes", pa.int64(), nullable=False),
    pa.field("source", pa.string(), nullable=False),      # where it came from: local path, GitHub URL
])

# A record a stage refused before it became a file record (binary, oversize, undecodable, unsafe path...).
REJECTS = pa.schema([
    pa.field("repo", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),
    pa.field("detail", pa.string()),
    pa.field("size_bytes", pa.int64()),
])

# One commit of a commit-eligible repository (GitHub crawl), with what a commit training sample needs.
COMMIT_CHANGE = pa.struct([
    pa.field("path", pa.string()),
    pa.field("status", pa.string()),       # A (added) | M (modified) | D (deleted) | R (renamed) ...
    pa.field("diff", pa.string()),         # unified diff of this file, cut at the configured bound
    pa.field("truncated", pa.bool_()),
])
COMMITS = pa.schema([
    pa.field("repo", pa.string(), nullable=False),
    pa.field("sha", pa.string(), nullable=False),
    pa.field("parent_sha", pa.string()),
    pa.field("author_date", TS),
    pa.field("message", pa.string(), nullable=False),
    pa.field("readme", pa.string()),       # the README before the commit, None if there was none
    pa.field("tree", pa.string()),         # directory listing before the commit, newline-separated, bounded
    pa.field("changes", pa.list_(COMMIT_CHANGE), nullable=False),
    pa.field("parents", pa.list_(pa.string())),   # every parent; two or more: a merge (changes are vs the first)
    pa.field("changes_truncated", pa.bool_()),    # more files changed than the crawl's max_files_per_commit kept
])

# A file record a filter excluded: the whole record plus why, so a threshold can change without re-crawling.
QUARANTINE = pa.schema(list(FILES) + [
    pa.field("reason", pa.string(), nullable=False),
    pa.field("detail", pa.string()),
    pa.field("stage", pa.string(), nullable=False),
])

# SPDX ids counted as permissive by the keep rule (The Stack v2's list, abridged to the common ones).
PERMISSIVE_LICENSES = frozenset({
    "MIT", "MIT-0", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "BSD-3-Clause-Clear", "0BSD", "ISC", "Zlib",
    "Unlicense", "CC0-1.0", "PSF-2.0", "Python-2.0", "BSL-1.0", "NCSA", "UPL-1.0", "X11", "WTFPL", "PostgreSQL",
    "Artistic-2.0", "MS-PL", "HPND", "BlueOak-1.0.0",
})


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_id(repo: str, commit: str, path: str) -> str:
    """Deterministic id of a file record.

    >>> file_id("a/b", "c0ffee", "src/x.py")[:12]
    '4362574080ac'
    """
    return sha256_hex(f"{repo}\0{commit}\0{path}".encode())


def to_spark_schema(schema: pa.Schema):
    """The Spark StructType of a pyarrow schema (imports pyspark lazily)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)
