"""MinHash signatures and LSH band keys, bit-for-bit compatible with datasketch's MinHash (scheme ``affine32``).

datasketch 2.x hashes each value to 32 bits, pre-mixes it with the MurmurHash3 finalizer and applies ``num_perm``
affine permutations ``a * h + b mod 2^32`` (odd ``a``) drawn from ``numpy.random.RandomState(seed)``. We draw the
same permutations and apply the same arithmetic in a compiled loop (``kernels.py``) over a whole batch of documents,
instead of one Python call and one small matrix per document. ``benchmarks/near_dedup_signatures.py`` measures the
difference against ``MinHash.update_batch`` and ``MinHash.bulk``; the tests check equality with datasketch.

A signature is split into ``bands`` bands of ``rows`` values; two documents are candidates when any band is
identical, which happens with probability ``1 - (1 - J^rows)^bands`` (the S-curve) for Jaccard J.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from spark_jobs.near_dedup import kernels

MAX32 = np.uint32(0xFFFFFFFF)


@dataclass(frozen=True)
class MinHasher:
    """``num_perm`` permutations from ``seed``; ``bands x rows`` LSH layout (``bands * rows <= num_perm``)."""

    num_perm: int = 250
    seed: int = 42
    bands: int = 25
    rows: int = 10

    def __post_init__(self):
        if self.num_perm < 1 or self.bands < 1 or self.rows < 1:
            raise ValueError(f"num_perm, bands and rows must be positive, got {self}")
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")

    @cached_property
    def permutations(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) as datasketch draws them for scheme affine32."""
        gen = np.random.RandomState(self.seed)
        a = gen.randint(0, 1 << 31, self.num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
        b = gen.randint(0, 1 << 32, self.num_perm, dtype=np.uint32)
        return a, b

    def signatures(self, values: list[np.ndarray]) -> np.ndarray:
        """One uint32 signature row per document from its 32-bit MinHash inputs; no values: the all-max row."""
        offsets = np.zeros(len(values) + 1, dtype=np.int64)
        np.cumsum([len(v) for v in values], out=offsets[1:])
        flat = np.concatenate(values).astype(np.uint32, copy=False) if values else np.empty(0, dtype=np.uint32)
        a, b = self.permutations
        return kernels.minhash_values(flat, offsets, a, b)

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """(documents x bands) signed 64-bit keys; equal bands get equal keys (``kernels.band_keys``)."""
        return kernels.band_keys(np.ascontiguousarray(signatures, dtype=np.uint32).reshape(-1, self.num_perm),
                                 self.bands, self.rows)

    def candidate_probability(self, jaccard: float) -> float:
        """P(two documents of Jaccard ``jaccard`` share at least one band).

        >>> round(MinHasher().candidate_probability(0.7), 4)
        0.5115
        """
        return 1.0 - (1.0 - jaccard**self.rows) ** self.bands

    def s_curve(self, points=(0.5, 0.7, 0.8, 0.9)) -> dict[str, float]:
        return {f"{j:.2f}": round(self.candidate_probability(j), 4) for j in points}


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Fraction of agreeing signature positions: the MinHash estimate of Jaccard."""
    return float(np.count_nonzero(sig_a == sig_b)) / len(sig_a)


def signature_bytes(signature: np.ndarray) -> bytes:
    """Little-endian uint32 bytes: the stored form of a signature (the incremental index)."""
    return np.ascontiguousarray(signature, dtype="<u4").tobytes()


def signature_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)
