"""One batch of documents -> shingle counts, signatures and band keys; the rules that turn a candidate pair into an
edge. Shared by both engines, so they agree."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spark_jobs.near_dedup import kernels
from spark_jobs.near_dedup.minhash import MinHasher
from spark_jobs.near_dedup.shingles import BYTE_CLASS, utf8_buffers


@dataclass
class SignedBatch:
    num_shingles: np.ndarray  # int64 per document; 0: too short to shingle (no signature, no band keys)
    signatures: np.ndarray    # (docs, num_perm) uint32; rows of unshingled documents are all-max
    band_keys: np.ndarray     # (docs, bands) int64; meaningless where num_shingles is 0

    @property
    def shingled(self) -> np.ndarray:
        return self.num_shingles > 0


def sign_documents(contents, hasher: MinHasher, ngram: int) -> SignedBatch:
    """Sign a batch: ``contents`` is a list of strings or an Arrow string column (read in place)."""
    data, offsets = utf8_buffers(contents)
    a, b = hasher.permutations
    signatures, counts = kernels.sign(data, offsets, ngram, BYTE_CLASS, a, b)
    return SignedBatch(counts, signatures, hasher.band_keys(signatures))


def _binomial_pmf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) = k), in logs (n up to thousands)."""
    if p >= 1:
        return float(k == n)
    return math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                    + k * math.log(p) + (n - k) * math.log1p(-p))


def estimate_floor(num_perm: int, threshold: float, error: float) -> float:
    """The highest MinHash estimate a pair of Jaccard ``threshold`` shows with probability at most ``error``.

    The estimate of a pair of Jaccard J is (agreeing positions) / num_perm with agreeing ~ Binomial(num_perm, J), so
    a candidate estimated at or below this floor is at the threshold or above with probability <= ``error`` (less for
    a higher J): it is rejected without exact verification. Most LSH candidates on real code are such pairs (shared
    boilerplate, templated files). ``error`` 0 gives -1.0: every candidate is verified.

    >>> estimate_floor(250, 0.8, 1e-6), estimate_floor(250, 0.8, 0.0)
    (0.668, -1.0)
    """
    floor, cdf = -1, 0.0
    for k in range(num_perm + 1):
        cdf += _binomial_pmf(k, num_perm, threshold)
        if cdf > error:
            break
        floor = k
    return floor / num_perm if floor >= 0 else -1.0


def estimate_ceiling(num_perm: int, threshold: float, error: float) -> float:
    """The lowest MinHash estimate a pair below Jaccard ``threshold`` shows with probability at most ``error``.

    The mirror of ``estimate_floor``: a pair of Jaccard J < threshold reaches an estimate >= this ceiling with
    probability <= ``error`` (the upper binomial tail at the threshold bounds every lower J), so a candidate
    estimated at or above it is accepted without exact verification. On real code these are the copies and
    templated files (J ~ 0.9-1.0), about a fifth of the candidates that verification would otherwise read.
    ``error`` 0 gives 2.0: every candidate above the floor is verified.

    >>> estimate_ceiling(250, 0.8, 1e-6), estimate_ceiling(250, 0.8, 0.0)
    (0.916, 2.0)
    """
    if error <= 0:
        return 2.0
    ceiling, tail = num_perm + 1, 0.0
    for k in range(num_perm, -1, -1):
        tail += _binomial_pmf(k, num_perm, threshold)
        if tail > error:
            break
        ceiling = k
    return ceiling / num_perm if ceiling <= num_perm else 2.0


def accept_pair(exact: float | None, estimate: float, threshold: float, verify: bool) -> bool:
    """A candidate becomes an edge: by exact Jaccard when known and verifying, else by the estimate when verifying.

    >>> accept_pair(0.79, 0.95, 0.8, True), accept_pair(None, 0.85, 0.8, True), accept_pair(0.1, 0.1, 0.8, False)
    (False, True, True)
    """
    if not verify:
        return True
    return (exact if exact is not None else estimate) >= threshold


def warm_up_kernels() -> None:
    """Compile every kernel (or load it from numba's on-disk cache) on a tiny input.

    A process's first call of a kernel otherwise compiles it (~10 s for all of them); the Spark image runs this at
    build time so executors start warm, and the benchmarks before they start their clocks.
    """
    import pyarrow as pa

    from spark_jobs.near_dedup.shingles import shingle_set_arrays

    hasher = MinHasher()
    texts = ["a = b(c) + d; e = f(g);", ""]
    for batch in (texts, pa.array(texts)):  # Python strings and (read-only) Arrow buffers compile apart
        signed = sign_documents(batch, hasher, 5)
        values, offsets = shingle_set_arrays(batch, 5)
    rows = np.array([0, 0], dtype=np.int64)
    kernels.indexed_jaccard(values, offsets, rows, rows)
    kernels.indexed_agreement(signed.signatures, rows, rows)
    kernels.agreement(signed.signatures, signed.signatures)
    kernels.pair_jaccard(values, offsets, values, offsets)
    hasher.signatures([np.array([1, 2, 3], dtype=np.uint32)])
