"""Fixtures of the quality tests: a real-code input commit and the tiny base checkpoint (built once)."""

from __future__ import annotations

import pytest

from tests.training.quality.corpus import commit_input, disk_files, files_table

SNAPSHOT = "2026-10"
VERSION = "v1"


@pytest.fixture(scope="session")
def corpus():
    return files_table(disk_files())


@pytest.fixture
def lake(config):
    return config.open_lake()


@pytest.fixture
def input_lake(lake, corpus):
    commit_input(lake, SNAPSHOT, corpus)
    return lake


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """The tiny random-init Llama + BPE tokenizer, small enough for seconds-long tests."""
    pytest.importorskip("torch")
    from training.quality.tiny_base import TinyLlamaShape, build_tiny_base

    shape = TinyLlamaShape(vocab_size=1024, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024)
    return build_tiny_base(tmp_path_factory.mktemp("tiny_base"), shape)


@pytest.fixture(scope="session")
def scorer_model(tiny_base, tmp_path_factory):
    """A scorer checkpoint (tiny base + a seeded random regression head): what train_scorer saves, untrained."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_base, num_labels=1, problem_type="regression")
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model.config.pad_token_id = tokenizer.pad_token_id
    out = tmp_path_factory.mktemp("scorer")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
