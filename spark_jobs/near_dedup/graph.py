"""Candidate pairs from LSH buckets and connected components, in plain Python (the single-process engine).

The Spark engine (``spark.py``) implements the same two rules with DataFrame operations (and runs
``estimated_candidates`` itself in one task when the signatures fit one); the parity test runs both on one input and
requires the same kept set.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable

import numpy as np

PAIRS_PER_STEP = 65_536  # candidate pairs estimated at once


def bucket_pairs(members: list[str], max_full_pairs: int) -> list[tuple[str, str]]:
    """The pairs one LSH bucket contributes, each as (smaller id, larger id).

    A bucket of up to ``max_full_pairs`` members gives all its pairs. A bigger one (the same boilerplate in
    thousands of files) gives a star around its smallest id: the bucket stays connected with n - 1 pairs instead
    of n^2 / 2, and verification checks each member against that centre.

    >>> bucket_pairs(["c", "a", "b"], 3)
    [('a', 'b'), ('a', 'c'), ('b', 'c')]
    >>> bucket_pairs(["c", "a", "b"], 2)
    [('a', 'b'), ('a', 'c')]
    """
    ordered = sorted(set(members))
    if len(ordered) <= max_full_pairs:
        return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :]]
    centre = ordered[0]
    return [(centre, m) for m in ordered[1:]]


def candidate_pairs(band_keys: dict[str, list[int]], max_full_pairs: int) -> set[tuple[str, str]]:
    """Distinct pairs of documents sharing at least one band (``band_keys``: id -> one key per band).

    >>> sorted(candidate_pairs({"x": [1, 2], "y": [1, 3], "z": [4, 3]}, 32))
    [('x', 'y'), ('y', 'z')]
    """
    buckets: dict[tuple[int, int], list[str]] = defaultdict(list)
    for doc, keys in band_keys.items():
        for band, key in enumerate(keys):
            buckets[(band, key)].append(doc)
    pairs: set[tuple[str, str]] = set()
    for members in buckets.values():
        if len(members) > 1:
            pairs.update(bucket_pairs(members, max_full_pairs))
    return pairs


def band_pairs(keys: np.ndarray, max_full_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """``candidate_pairs`` over a (documents x bands) key matrix, vectorized: (a, b) row numbers, a < b, distinct.

    Row order is the documents' id order, so the smallest row of a bucket is its smallest id (the star's centre).

    >>> keys = np.array([[1, 2], [1, 3], [4, 3]])
    >>> [p.tolist() for p in band_pairs(keys, 32)]
    [[0, 1], [1, 2]]
    """
    n, bands = keys.shape
    rows = np.arange(n)
    src_parts, dst_parts = [], []
    for band in range(bands):
        order = np.lexsort((rows, keys[:, band]))
        ordered = keys[order, band]
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1]))) if n else rows
        sizes = np.diff(np.append(starts, n))
        for size in np.unique(sizes[(sizes > 1) & (sizes <= max_full_pairs)]):
            first = starts[sizes == size]
            a, b = np.triu_indices(int(size), 1)
            src_parts.append(order[(first[:, None] + a).ravel()])
            dst_parts.append(order[(first[:, None] + b).ravel()])
        for start, size in zip(starts[sizes > max_full_pairs], sizes[sizes > max_full_pairs], strict=True):
            src_parts.append(np.full(size - 1, order[start]))
            dst_parts.append(order[start + 1 : start + size])
    if not src_parts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    codes = np.unique(np.concatenate(src_parts).astype(np.int64) * n + np.concatenate(dst_parts))
    return codes // n, codes % n


def estimated_candidates(keys: np.ndarray, signatures: np.ndarray, is_index: np.ndarray, max_full_pairs: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, MinHash estimate) of every candidate pair of the rows (``band_pairs``; rows in id order) but pairs of
    two index rows (their snapshot already deduplicated them).

    >>> sigs = np.array([[1, 2], [1, 2], [1, 3]], dtype=np.uint32)
    >>> [x.tolist() for x in estimated_candidates(sigs, sigs, np.array([False, True, True]), 32)]
    [[0, 0], [1, 2], [1.0, 0.5]]
    """
    from spark_jobs.near_dedup import kernels  # numba: loaded on first use

    src, dst = band_pairs(keys, max_full_pairs)
    keep = ~(is_index[src] & is_index[dst])
    src, dst = src[keep], dst[keep]
    estimate = np.concatenate([kernels.indexed_agreement(signatures, src[i : i + PAIRS_PER_STEP],
                                                         dst[i : i + PAIRS_PER_STEP])
                               for i in range(0, src.size, PAIRS_PER_STEP)] or [np.empty(0)])
    return src, dst, estimate


def connected_components(nodes: Iterable[Hashable], edges: Iterable[tuple[Hashable, Hashable]]) -> dict:
    """node -> smallest node of its component (union-find with path halving).

    >>> connected_components("abcde", [("b", "c"), ("d", "c")])
    {'a': 'a', 'b': 'b', 'c': 'b', 'd': 'b', 'e': 'e'}
    """
    parent = {n: n for n in nodes}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        ra, rb = find(a), find(b)
        if ra != rb:
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            parent[hi] = lo
    return {n: find(n) for n in parent}


def keepers(edges: list[tuple[int, int]], is_index: np.ndarray, records: Callable[[list[int]], dict[int, dict]]
            ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The keep rule over the components of ``edges`` (node numbers): (removed, keeper, component sizes).

    Each component keeps one node, an index node first (its snapshot already kept it), else the smallest
    ``keep_key`` of its record (``records``: nodes -> node -> keep-rule record); every other node that is not an
    index node is removed, in favour of that keeper.

    >>> recs = {0: {"stars": 1}, 1: {"stars": 9}, 2: {"stars": 5}, 3: {"stars": 0}}
    >>> [x.tolist() if hasattr(x, "tolist") else x for x in keepers([(0, 1), (1, 2)], np.zeros(4, bool),
    ...                                                              lambda nodes: {n: recs[n] for n in nodes})]
    [[0, 2], [1, 1], [3]]
    """
    from spark_jobs.keep_rule import keep_key

    members: dict[Hashable, list[int]] = defaultdict(list)
    for node, root in connected_components([], edges).items():
        members[root].append(node)
    record = records([n for m in members.values() for n in m])
    removed, keeper = [], []
    for group in members.values():
        best = min(group, key=lambda node: (0 if is_index[node] else 1, keep_key(record[node])))
        for node in sorted(group):
            if node != best and not is_index[node]:
                removed.append(node)
                keeper.append(best)
    return (np.array(removed, dtype=np.int64), np.array(keeper, dtype=np.int64),
            [len(m) for m in members.values()])


def set_jaccards(values: np.ndarray, offsets: np.ndarray, set_of: np.ndarray, a: np.ndarray, b: np.ndarray
                 ) -> np.ndarray:
    """Exact Jaccard of the node pairs (``a``, ``b``) whose two shingle sets were built (``set_of``: node -> its
    set's row in the CSR ``values``/``offsets``, -1 if none), NaN for the others (the keep rule's scores and the
    checked pairs of both engines).

    >>> values, offsets = np.array([1, 2, 3, 2, 3, 4], np.uint64), np.array([0, 3, 6])
    >>> set_jaccards(values, offsets, np.array([0, -1, 1]), np.array([0, 0]), np.array([2, 1])).tolist()
    [0.5, nan]
    """
    from spark_jobs.near_dedup import kernels  # numba: loaded on first use

    both = (set_of[a] >= 0) & (set_of[b] >= 0)
    out = np.full(a.size, np.nan)
    out[both] = kernels.indexed_jaccard(values, offsets, set_of[a[both]], set_of[b[both]])
    return out
