"""SPM FIM: exact inversion, the configured rate, determinism, and the token-level layout."""

from __future__ import annotations

import math

import dataset_fixtures
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lake.tokens import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, SEP, SPECIAL_IDS
from spark_jobs.dataset import fim
from spark_jobs.dataset.documents import decode_document, encode_documents, normalize

tiny_tokenizer = dataset_fixtures.tiny_tokenizer  # the session fixture, shared

pieces_strategy = st.lists(st.one_of(st.tuples(st.just(False), st.text(max_size=40)),
                                     st.just((True, SEP))), max_size=8)


@given(pieces=pieces_strategy, seed=st.integers(0, 2**31), doc_id=st.text(max_size=10))
@settings(max_examples=300, deadline=None)
def test_removing_markers_and_reordering_restores_the_document(pieces, seed, doc_id):
    out, applied = fim.apply(pieces, rate=1.0, seed=seed, doc_id=doc_id)
    assert applied and fim.is_fim(out)
    markers = [value for is_special, value in out if is_special and value in fim.MARKERS]
    assert markers == [FIM_SUFFIX, FIM_PREFIX, FIM_MIDDLE]
    assert fim.invert(out) == normalize(pieces)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_measured_rate_matches_the_configured_one(rate):
    n = 20_000
    hits = sum(fim.apply([(False, "x = 1\n")], rate=rate, seed=3, doc_id=f"doc-{i}")[1] for i in range(n))
    sigma = math.sqrt(n * rate * (1 - rate))
    assert abs(hits - n * rate) < 5 * sigma


def test_the_split_depends_only_on_seed_and_document():
    doc = [(False, "def f():\n    return 1\n" * 5)]
    runs = {fim.apply(doc, rate=1.0, seed=7, doc_id="a")[0] for _ in range(3)}
    assert len(runs) == 1
    others = {fim.apply(doc, rate=1.0, seed=s, doc_id="a")[0] for s in range(8, 20)}
    assert len(others - runs) >= 10  # another seed gives other splits


def test_split_points_are_uniform_over_the_document():
    doc = [(False, "abcdefghij")]
    middles = []
    for i in range(2000):
        out, _ = fim.apply(doc, rate=1.0, seed=1, doc_id=str(i))
        middle = out[out.index((True, FIM_MIDDLE)) + 1 :]
        middles.append(len(middle[0][1]) if middle else 0)
    assert set(middles) == set(range(11))  # empty, whole and every length between
    # |a - b| for a, b uniform on 0..10: P(0) = 11/121, P(10) = 2/121
    assert 0.05 < middles.count(0) / 2000 < 0.13 and 0.004 < middles.count(10) / 2000 < 0.04


def test_rate_zero_never_rewrites():
    assert not any(fim.apply([(False, "abc")], rate=0.0, seed=0, doc_id=str(i))[1] for i in range(200))


def test_a_document_with_markers_is_refused():
    with pytest.raises(ValueError, match="already contains a FIM marker"):
        fim.apply([(True, FIM_PREFIX)], rate=1.0, seed=0, doc_id="x")


def test_malformed_samples_are_refused():
    with pytest.raises(ValueError, match="missing"):
        fim.invert([(True, FIM_SUFFIX), (False, "a")])
    with pytest.raises(ValueError, match="order"):
        fim.invert([(True, FIM_SUFFIX), (True, FIM_MIDDLE), (True, FIM_PREFIX)])


@given(body=st.text(min_size=1, max_size=120), seed=st.integers(0, 1000))
@settings(max_examples=80, deadline=None)
def test_token_level_round_trip(tiny_tokenizer, body, seed):
    doc = ((False, "src/a.py\n"), (True, SEP), (False, body))
    out, _ = fim.apply(doc, rate=1.0, seed=seed, doc_id="d")
    [ids] = encode_documents(tiny_tokenizer, [out])
    assert ids[0] == SPECIAL_IDS[FIM_SUFFIX] and ids[-1] == SPECIAL_IDS["<[end▁of▁sentence]>"]
    assert fim.invert(decode_document(tiny_tokenizer, ids)) == normalize(doc)
