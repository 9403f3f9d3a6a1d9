"""Candidate pairs from LSH buckets and connected components, in plain Python (the single-process engine).

The Spark engine (``spark.py``) implements the same two rules with DataFrame operations; the parity test runs
both on one input and requires the same kept set.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable


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
