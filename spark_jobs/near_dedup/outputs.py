"""Schemas of the datasets near dedup writes besides `files` (FILES records), and the signature-scheme tag."""

from __future__ import annotations

import pyarrow as pa

from lake.schemas import TS

# One removed record per row. level "file": ids are file ids; level "repo": ids are repository names (every file
# of the removed repository is dropped). jaccard: exact Jaccard of the two shingle sets where verification built
# both (each file is in some candidate pair verified exactly), else null (a pair accepted or rejected on its
# estimate alone, an index file, verification off); estimated_jaccard: the MinHash estimate (signature agreement).
DUPLICATES = pa.schema([
    pa.field("removed_id", pa.string(), nullable=False),
    pa.field("kept_id", pa.string(), nullable=False),
    pa.field("level", pa.string(), nullable=False),
    pa.field("jaccard", pa.float64()),
    pa.field("estimated_jaccard", pa.float64(), nullable=False),
])

# The incremental index: one row per kept, shingled file of a snapshot. Later snapshots read these instead of
# recomputing anything, and the keep-rule columns let an index file win a collision deterministically.
SIGNATURES = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("repo", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("license", pa.string()),
    pa.field("stars", pa.int64(), nullable=False),
    pa.field("forks", pa.int64(), nullable=False),
    pa.field("repo_created_at", TS),
    pa.field("snapshot", pa.string(), nullable=False),
    pa.field("scheme", pa.string(), nullable=False),
    pa.field("num_shingles", pa.int64(), nullable=False),
    pa.field("signature", pa.binary(), nullable=False),    # num_perm little-endian uint32
])

KEEP_COLUMNS = ["id", "repo", "path", "license", "stars", "forks", "repo_created_at"]


def scheme_tag(cfg) -> str:
    """Everything that must match for two signatures to be comparable, e.g. ``code5/utf8w8lo32/affine32/p250/s42``.

    ``utf8w8lo32``: tokens from UTF-8 bytes, token hashes from 8-byte words (shingles.py), low 32 bits to MinHash.
    (Signatures of the earlier ``xxh3lo32`` scheme are refused as an index: re-run their snapshots.)
    """
    return f"code{cfg.ngram}/utf8w8lo32/affine32/p{cfg.num_perm}/s{cfg.seed}"
