"""Scorer inference pieces: tokenization policy, length-sorted batching, transformers scoring."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")

from training.quality.scorer import TransformersScorer, encode, token_budget_batches  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer(scorer_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(scorer_model)


def test_encode_prepends_bos_keeps_the_head_and_flags_cuts(tokenizer):
    text = "def f(x):\n    return x + 1\n" * 50
    (ids,), (cut,) = encode(tokenizer, [text], 32)
    full = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids == [tokenizer.bos_token_id, *full[:31]] and cut
    (short,), (short_cut,) = encode(tokenizer, ["x = 1\n"], 32)
    assert short[0] == tokenizer.bos_token_id and not short_cut


def test_special_token_strings_in_files_are_plain_text(tokenizer):
    (ids,), _ = encode(tokenizer, ["s = '<|pad|><|bos|><|eos|>'"], 128)
    specials = {tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}
    assert ids[0] == tokenizer.bos_token_id and not specials & set(ids[1:])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=60), st.integers(1, 2000))
def test_budget_batches_cover_every_row_once_within_budget(lengths, budget):
    batches = token_budget_batches(lengths, budget)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) == 1 or width * len(batch) <= budget


def test_batched_scores_equal_one_by_one_native_transformers_scores(scorer_model, tokenizer, corpus):
    import torch
    from transformers import AutoModelForSequenceClassification

    texts = corpus.column("content").to_pylist()[:24]
    ids, _ = encode(tokenizer, texts, 96)
    batched = TransformersScorer(str(scorer_model), dtype="float32", token_budget=400).score(ids)
    native = AutoModelForSequenceClassification.from_pretrained(scorer_model, dtype=torch.float32).eval()
    with torch.inference_mode():
        one_by_one = np.array([native(torch.tensor([row])).logits[0, 0].item() * 10 for row in ids])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-4)
    assert np.std(batched) > 0


def test_packed_forward_scores_equal_batched_scores(scorer_model, tokenizer, corpus):
    import torch
    from transformers import AutoModelForSequenceClassification

    from training.quality.packed import pack_rows, packed_scores

    texts = corpus.column("content").to_pylist()[:20]
    ids, _ = encode(tokenizer, texts, 80)
    model = AutoModelForSequenceClassification.from_pretrained(scorer_model, dtype=torch.float32).eval()
    batched = TransformersScorer(str(scorer_model), dtype="float32", token_budget=400).score(ids)
    packed = np.zeros(len(ids))
    rows = pack_rows([len(i) for i in ids], 256)
    assert sorted(i for r in rows for i in r) == list(range(len(ids)))
    assert all(sum(len(ids[i]) for i in r) <= 256 for r in rows) and len(rows) < len(ids)
    with torch.inference_mode():
        for row in rows:
            packed[row] = packed_scores(model, [ids[i] for i in row]).numpy() * 10
    np.testing.assert_allclose(packed, batched, atol=1e-4)
