"""The benchmark's ground truth and scaled corpus hold what the results rely on (benchmarks/near_dedup_*.py)."""

from __future__ import annotations

import random
from itertools import combinations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.near_dedup_corpus import copy_of, disguise
from benchmarks.near_dedup_truth import set_jaccard, shingle_sets, similar_pairs
from spark_jobs.near_dedup.shingles import jaccard, shingle_hashes, shingles
from tests.spark_jobs.near_dedup.corpus_helpers import edit, stdlib_sources


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sets(st.integers(0, 40), max_size=25), min_size=2, max_size=30), st.sampled_from([0.5, 0.8, 1.0]))
def test_prefix_filter_join_finds_exactly_the_pairs_of_a_brute_force_scan(sets, threshold):
    arrays = [np.array(sorted(s), dtype=np.uint64) for s in sets]
    values = np.concatenate(arrays) if arrays else np.empty(0, np.uint64)
    offsets = np.concatenate(([0], np.cumsum([a.size for a in arrays]))).astype(np.int64)
    expected = {(a, b) for a, b in combinations(range(len(sets)), 2)
                if sets[a] and sets[b] and len(sets[a] & sets[b]) / len(sets[a] | sets[b]) >= threshold}
    assert set(similar_pairs(values, offsets, threshold)) == expected


def test_truth_sets_are_the_shingle_strings_and_disguise_keeps_every_jaccard():
    rng = random.Random(4)
    texts = [t for _, t in stdlib_sources(4)]
    texts += [edit(t, rng, strength=3) for t in texts]
    values, offsets = shingle_sets(texts, workers=1)
    assert [int(n) for n in np.diff(offsets)] == [len(shingles(t)) for t in texts]
    for a, b in [(0, 4), (1, 5), (0, 1)]:
        exact = set_jaccard(values, offsets, a, b)
        assert exact == jaccard(shingle_hashes(texts[a]), shingle_hashes(texts[b]))
        assert jaccard(shingle_hashes(disguise(texts[a], 3)), shingle_hashes(disguise(texts[b], 3))) == exact
    across = jaccard(shingle_hashes(disguise(texts[0], 1)), shingle_hashes(disguise(texts[0], 2)))
    assert across < 0.2 and copy_of("copy2/jdk/java.base") == (2, "jdk/java.base")
