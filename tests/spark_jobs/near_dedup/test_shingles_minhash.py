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
from spark_jobs.near_dedup.graph import bucket_pairs, candidate_pairs, connected_components
from spark_jobs.near_dedup.minhash import MinHasher, estimated_jaccard, signature_bytes, signature_from_bytes
from spark_jobs.near_dedup.shingles import (
    batch_shingle_hashes,
    jaccard,
    minhash_inputs,
    shingle_hashes,
    shingles,
    tokens,
)
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


def test_chunking_does_not_change_signatures(monkeypatch):
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32) for n in (5, 700, 3, 1500, 0)]
    hasher = MinHasher(num_perm=64, seed=3, bands=8, rows=8)
    whole = hasher.signatures(docs)
    monkeypatch.setattr(mh, "CHUNK_COLUMNS", 256)  # documents now span several chunks, chunks span documents
    assert np.array_equal(hasher.signatures(docs), whole)
    assert np.array_equal(np.vstack([hasher.signatures([d]) for d in docs]), whole)
    assert (whole[4] == mh.MAX32).all()
    assert (hasher.signatures([docs[4], docs[4]]) == mh.MAX32).all()


def test_band_keys_identify_equal_bands_only():
    hasher = MinHasher(num_perm=20, seed=1, bands=4, rows=5)
    sig = np.arange(20, dtype=np.uint32)
    other = sig.copy()
    other[7] += 1  # band 1 differs
    a, b = hasher.band_keys(sig), hasher.band_keys(other)
    assert [x == y for x, y in zip(a, b, strict=True)] == [True, False, True, True]
    assert all(-(2**63) <= k < 2**63 for k in a)
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
