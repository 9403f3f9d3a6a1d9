"""One batch of documents -> shingle counts, signatures and band keys; shared by both engines, so they agree."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spark_jobs.near_dedup.minhash import MinHasher, estimated_jaccard
from spark_jobs.near_dedup.shingles import batch_shingle_hashes, jaccard, minhash_inputs


@dataclass
class SignedBatch:
    num_shingles: list[int]
    signatures: np.ndarray          # (docs, num_perm) uint32; rows of unshingled documents are all-max
    band_keys: list[list[int] | None]  # None for a document too short to shingle
    shingle_sets: list[np.ndarray]     # sorted distinct uint64 shingle hashes (the exact-Jaccard sets)


def sign_documents(contents, hasher: MinHasher, ngram: int) -> SignedBatch:
    """Sign a batch: ``contents`` is a list of strings or an Arrow string column (read in place)."""
    sets = batch_shingle_hashes(contents, ngram)
    signatures = hasher.signatures([minhash_inputs(s) for s in sets])
    keys = [hasher.band_keys(sig) if s.size else None for s, sig in zip(sets, signatures, strict=True)]
    return SignedBatch([int(s.size) for s in sets], signatures, keys, sets)


def pair_similarity(shingles_a: np.ndarray | None, shingles_b: np.ndarray | None,
                    sig_a: np.ndarray, sig_b: np.ndarray) -> tuple[float | None, float]:
    """(exact Jaccard, or None when either shingle set is unknown; MinHash estimate)."""
    exact = None if shingles_a is None or shingles_b is None else jaccard(shingles_a, shingles_b)
    return exact, estimated_jaccard(sig_a, sig_b)


def accept_pair(exact: float | None, estimate: float, threshold: float, verify: bool) -> bool:
    """A candidate becomes an edge: by exact Jaccard when known and verifying, else by the estimate when verifying.

    >>> accept_pair(0.79, 0.95, 0.8, True), accept_pair(None, 0.85, 0.8, True), accept_pair(0.1, 0.1, 0.8, False)
    (False, True, True)
    """
    if not verify:
        return True
    return (exact if exact is not None else estimate) >= threshold
