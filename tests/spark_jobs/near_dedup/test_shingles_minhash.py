"""Shingling, datasketch-compatible signatures, band keys and candidate rules (pure functions, no Spark)."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHash, MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st

from spark_jobs.near_dedup import minhash as mh
from spark_jobs.near_dedup.config import NearDedupConfig
from spark_jobs.near_dedup.graph import band_pairs, bucket_pairs, candidate_pairs, connected_components
from spark_jobs.near_dedup.minhash import MinHasher, estimated_jaccard, signature_bytes, signature_from_bytes
from spark_jobs.near_dedup.shingles import (
    batch_shingle_hashes,
    jaccard,
    minhash_inputs,
    shingle_hashes,
    shingles,
    tokens,
)
from spark_jobs.near_dedup.signing import estimate_ceiling, estimate_floor, sign_documents
from tests.spark_jobs.near_dedup.corpus_helpers import edit, stdlib_sources


def test_tokens_keep_punctuation_that_prose_normalisers_drop():
    assert shingles("a[i] = b(c)", 3) != shingles("a i = b c", 3)
    assert tokens("x->y != z") == ["x", "-", ">", "y", "!", "=", "z"]
    assert shingles("Foo = 1", 3) != shingles("foo = 1", 3)  # case is kept


def test_tokens_come_from_utf8_bytes_and_never_split_a_character():
    assert tokens("naïve_名前 = «x»\u00a0y") == ["naïve_名前", "=", "«x»\u00a0y"]  # non-ASCII bytes are word bytes
    assert tokens("a\x1cb\vc") == ["a", "\x1c", "b", "c"]  # ASCII control bytes are punctuation, \v is space
    assert shingle_hashes("\ud800 a b c d") .size == 1  # a lone surrogate is hashed (surrogatepass), not an error


def test_batch_shingling_equals_one_document_at_a_time():
    texts = [t for _, t in stdlib_sources(3)] + ["", None, "a b c d", "x = 1", "é = f(ü) + 1", "ab", "cd e f g"]
    one = [shingle_hashes(t or "") for t in texts]
    for batch in (batch_shingle_hashes(texts), batch_shingle_hashes(pa.array(texts)),
                  batch_shingle_hashes(pa.array(texts, pa.large_string())),
                  batch_shingle_hashes(pa.chunked_array([texts[:4], texts[4:]])),
                  batch_shingle_hashes(pa.array(["zz", *texts]).slice(1))):
        assert len(batch) == len(texts)
        assert all(np.array_equal(a, b) for a, b in zip(batch, one, strict=True))
    # no token or window runs across a document boundary
    assert [len(s) for s in batch_shingle_hashes(["a b c", "d e f"], 5)] == [0, 0]
    assert batch_shingle_hashes(["a b c d ee", "ff"], 5)[0].tolist() == shingle_hashes("a b c d ee").tolist()


def test_short_documents_have_no_shingles():
    assert shingle_hashes("", 5).size == 0
    assert shingle_hashes("return x", 5).size == 0
    assert shingle_hashes("return x + y;", 5).size == 1


def test_shingle_hash_sets_give_the_exact_jaccard_of_the_shingle_strings():
    texts = [t for _, t in stdlib_sources(4)]
    rng = random.Random(2)
    for text in texts:
        other = edit(text, rng, strength=8)
        a, b = shingles(text), shingles(other)
        ha, hb = shingle_hashes(text), shingle_hashes(other)
        assert (len(ha), len(hb)) == (len(a), len(b))
        assert jaccard(ha, hb) == len(a & b) / len(a | b)
    assert np.array_equal(shingle_hashes(texts[0]), shingle_hashes(texts[0]))
    assert shingle_hashes("a b c d e").tolist() != shingle_hashes("a b c d f").tolist()


@pytest.mark.parametrize("num_perm,seed", [(250, 42), (128, 1)])
def test_signatures_equal_datasketch_on_the_same_shingles(num_perm, seed):
    texts = [t for _, t in stdlib_sources(5)] + ["x = f(y) + 1"]
    hasher = MinHasher(num_perm=num_perm, seed=seed, bands=num_perm // 10, rows=10)
    ours = hasher.signatures([minhash_inputs(shingle_hashes(t, 5)) for t in texts])
    for text, sig in zip(texts, ours, strict=True):
        ref = MinHash(num_perm=num_perm, seed=seed, hashfunc=int)
        ref.update_batch(minhash_inputs(shingle_hashes(text, 5)).tolist())
        assert np.array_equal(ref.hashvalues, sig)


def _numpy_signature(values: np.ndarray, hasher: MinHasher) -> np.ndarray:
    """The affine32 MinHash written out in numpy, one document (the definition the kernel unrolls)."""
    a, b = (p.astype(np.uint64) for p in hasher.permutations)
    x = values.astype(np.uint64)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x85EBCA6B)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0xC2B2AE35)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    if x.size == 0:
        return np.full(hasher.num_perm, mh.MAX32, dtype=np.uint32)
    return (((a[:, None] * x[None, :]) + b[:, None]) & np.uint64(0xFFFFFFFF)).min(axis=1).astype(np.uint32)


def test_unrolled_kernel_equals_the_plain_definition_at_every_length():
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32) for n in (*range(0, 19), 700, 1501)]
    hasher = MinHasher(num_perm=64, seed=3, bands=8, rows=8)
    whole = hasher.signatures(docs)
    assert np.array_equal(whole, np.vstack([_numpy_signature(d, hasher) for d in docs]))
    assert np.array_equal(np.vstack([hasher.signatures([d]) for d in docs]), whole)
    assert (whole[0] == mh.MAX32).all()


def test_scheme_values_are_stable():
    """The shingle hashes and signatures of the ``utf8w8lo32/affine32`` scheme tag, pinned: a change here must
    change ``outputs.scheme_tag`` (stored indexes would silently stop matching)."""
    h = shingle_hashes("if (a[i] >= 10): return naïve_f(x) # ünïcode")
    assert [hex(int(v)) for v in h[:3]] == ["0x3a4beddc88335e7", "0x2238c59a0bc65cfc", "0x5079e50487e15d9c"]
    assert len(h) == 14 and hex(int(h[-1])) == "0xfb133dc5b8a9952e"
    sig = MinHasher().signatures([minhash_inputs(h)])[0]
    assert sig[:6].tolist() == [198015727, 112055822, 146862940, 446917457, 236884477, 143087697]
    assert sig[-3:].tolist() == [33196220, 16888378, 93051088]


def test_fused_signing_equals_shingles_then_minhash():
    texts = [t for _, t in stdlib_sources(6)] + ["", "a b", "x = f(y) + 1", "é" * 3000, "a;" * 5000]
    hasher = MinHasher()
    signed = sign_documents(pa.array(texts), hasher, 5)
    sets = [shingle_hashes(t) for t in texts]
    assert signed.num_shingles.tolist() == [len(s) for s in sets]
    assert np.array_equal(signed.signatures, hasher.signatures([minhash_inputs(s) for s in sets]))
    assert np.array_equal(signed.band_keys, hasher.band_keys(signed.signatures))
    assert signed.shingled.tolist() == [len(s) > 0 for s in sets]


def test_band_keys_identify_equal_bands_only():
    hasher = MinHasher(num_perm=20, seed=1, bands=4, rows=5)
    sig = np.arange(20, dtype=np.uint32)
    other = sig.copy()
    other[7] += 1  # band 1 differs
    (a, b), = [hasher.band_keys(np.vstack([sig, other]))]
    assert (a == b).tolist() == [True, False, True, True]
    assert a.dtype == np.int64 and len(set(a.tolist())) == 4  # distinct bands, distinct keys
    assert np.array_equal(signature_from_bytes(signature_bytes(sig)), sig)


def test_layout_must_fit_the_permutations():
    with pytest.raises(ValueError, match="exceeds num_perm"):
        MinHasher(num_perm=100, bands=25, rows=10)
    with pytest.raises(ValueError, match="exceeds num_perm"):
        NearDedupConfig(num_perm=100)


def test_s_curve_matches_datasketch_probability():
    hasher = NearDedupConfig().hasher()
    curve = hasher.s_curve()
    assert list(curve) == ["0.50", "0.70", "0.80", "0.90"]
    assert curve["0.50"] < 0.05 < 0.9 < curve["0.80"] < curve["0.90"]
    lsh = MinHashLSH(num_perm=250, params=(25, 10))
    assert (lsh.b, lsh.r) == (25, 10)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_estimate_tracks_exact_jaccard(seed):
    text = stdlib_sources(3)[seed % 3][1]
    rng = random.Random(seed)
    a, b = shingle_hashes(text), shingle_hashes(edit(text, rng, strength=rng.randint(0, 30)))
    hasher = MinHasher()
    sa, sb = hasher.signatures([minhash_inputs(a), minhash_inputs(b)])
    # 250 permutations: standard error <= 0.032; 5 sigma
    assert abs(estimated_jaccard(sa, sb) - jaccard(a, b)) < 0.16


def test_jaccard_edges():
    empty = np.empty(0, dtype=np.uint64)
    assert jaccard(empty, empty) == 0.0
    assert jaccard(np.array([1], dtype=np.uint64), empty) == 0.0


def test_skewed_bucket_is_a_star_not_a_clique():
    members = [f"d{i:05d}" for i in range(5000)]
    pairs = bucket_pairs(members, 32)
    assert len(pairs) == 4999 and all(a == "d00000" for a, _ in pairs)
    assert len(bucket_pairs(members[:32], 32)) == 32 * 31 // 2
    keys = {m: [7, i] for i, m in enumerate(members)}  # one shared band, one unique
    assert len(candidate_pairs(keys, 32)) == 4999


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=60))
def test_union_find_matches_brute_force_reachability(edges):
    comp = connected_components([], edges)
    adj = {}
    for a, b in edges:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    for node in adj:
        seen, todo = {node}, [node]
        while todo:
            for nb in adj[todo.pop()]:
                if nb not in seen:
                    seen.add(nb)
                    todo.append(nb)
        assert comp[node] == min(seen)


@pytest.mark.parametrize("num_perm,threshold,error", [(250, 0.8, 1e-6), (128, 0.7, 1e-3), (250, 0.9, 1e-9)])
def test_estimate_floor_is_the_binomial_tail_bound(num_perm, threshold, error):
    from scipy.stats import binom

    k = round(estimate_floor(num_perm, threshold, error) * num_perm)
    assert binom.cdf(k, num_perm, threshold) <= error < binom.cdf(k + 1, num_perm, threshold)
    assert estimate_floor(num_perm, threshold, 0.0) == -1.0  # nothing rejected unverified


@pytest.mark.parametrize("num_perm,threshold,error", [(250, 0.8, 1e-6), (128, 0.7, 1e-3), (250, 0.9, 1e-9)])
def test_estimate_ceiling_is_the_upper_binomial_tail_bound(num_perm, threshold, error):
    from scipy.stats import binom

    k = round(estimate_ceiling(num_perm, threshold, error) * num_perm)
    # P(estimate >= k / num_perm) at the threshold is within the error; one agreement fewer is not.
    assert binom.sf(k - 1, num_perm, threshold) <= error < binom.sf(k - 2, num_perm, threshold)
    assert estimate_floor(num_perm, threshold, error) < threshold < k / num_perm
    assert estimate_ceiling(num_perm, threshold, 0.0) == 2.0  # nothing accepted unverified
    assert estimate_ceiling(num_perm, 1.0, error) == 2.0  # a pair below 1.0 can show 1.0: always verify


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), min_size=3, max_size=3), max_size=80), st.sampled_from([2, 3, 32]))
def test_vectorized_band_pairs_match_the_reference_rule(keys, max_full):
    ids = [f"d{i:03d}" for i in range(len(keys))]
    expected = candidate_pairs(dict(zip(ids, keys, strict=True)), max_full)
    a, b = band_pairs(np.array(keys, dtype=np.int64).reshape(len(keys), 3), max_full)
    assert {(ids[x], ids[y]) for x, y in zip(a.tolist(), b.tolist(), strict=True)} == expected
