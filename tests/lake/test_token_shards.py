"""The token shard format: pack, write inside a StageRun, read back through the commit, memory-mapped."""

from __future__ import annotations

import json

import numpy as np
import pytest
import test_storage_s3
from hypothesis import given, settings
from hypothesis import strategies as st

from lake.stage import Lake, StageRun
from lake.token_shards import (
    INDEX,
    SOURCES,
    SequencePacker,
    ShardWriter,
    TokenShards,
    build_index,
    read_index,
    write_index,
)

EOS, PAD = 2, 1
# The S3 lake fixtures (a weed mini server on loopback, a fresh prefix per test) of the storage tests.
s3_server, s3_root = test_storage_s3.s3_server, test_storage_s3.s3_root


def _docs(rng: np.random.Generator, n: int, max_len: int) -> list[np.ndarray]:
    docs = []
    for _ in range(n):
        body = rng.integers(3, 1000, size=int(rng.integers(1, max_len)), dtype=np.uint32)
        docs.append(np.append(body, np.uint32(EOS)))
    return docs


def _write(lake: Lake, docs_by_source: dict[str, list[np.ndarray]], seq_lens: dict[str, int],
           shard_tokens: int = 64) -> None:
    with StageRun(lake, "s1", "dataset_build") as run:
        shards = {}
        for source in SOURCES:
            writer = ShardWriter.for_run(run, source, seq_len=seq_lens[source], pad_id=PAD, shard_tokens=shard_tokens,
                                         align=source != "file_level")
            shards[source] = writer.add_all(docs_by_source.get(source, [])).close()
        write_index(run, build_index(seq_lens=seq_lens, shards=shards, vocab_size=1000, pad_id=PAD, eos_id=EOS,
                                     bos_id=0, tokenizer={"snapshot": "s1", "stage": "tokenizer", "uri": "x"}))


@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=30), seq_len=st.integers(2, 17),
       max_rows=st.integers(1, 5))
@settings(max_examples=60, deadline=None)
def test_packer_keeps_every_token_and_boundary(lengths, seq_len, max_rows):
    packer = SequencePacker(seq_len, PAD, max_rows=max_rows)
    docs = [np.full(n, 10 + i, dtype=np.uint32) for i, n in enumerate(lengths)]
    blocks = [b for d in docs for b in packer.add(d)]
    tail = packer.flush()
    blocks += [tail] if tail else []
    flat = np.concatenate([b.tokens.reshape(-1)[: (b.tokens.shape[0] - 1) * seq_len + int(b.valid[-1])]
                           for b in blocks])
    assert np.array_equal(flat, np.concatenate(docs))
    assert sum(b.documents for b in blocks) == len(docs)
    assert all(int(v) == seq_len for b in blocks for v in b.valid[:-1])
    # every start offset points at the first token of a document
    starts_global, offset = [], 0
    for b in blocks:
        starts_global += [offset + int(s) for s in b.doc_starts]
        offset += b.real_tokens
    assert starts_global == list(np.cumsum([0] + lengths[:-1]))


@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=30), seq_len=st.integers(2, 17),
       max_rows=st.integers(1, 5))
@settings(max_examples=80, deadline=None)
def test_aligned_packing_keeps_fitting_documents_in_one_row(lengths, seq_len, max_rows):
    packer = SequencePacker(seq_len, PAD, max_rows=max_rows, align=True)
    docs = [np.full(n, 10 + i, dtype=np.uint32) for i, n in enumerate(lengths)]
    blocks = [b for d in docs for b in packer.add(d)]
    tail = packer.flush()
    blocks += [tail] if tail else []
    rows = [(row, int(v)) for b in blocks for row, v in zip(b.tokens, b.valid, strict=True)]
    assert all(np.all(row[v:] == PAD) for row, v in rows)
    assert np.array_equal(np.concatenate([row[:v] for row, v in rows]), np.concatenate(docs))
    starts, offset = [], 0
    for b in blocks:
        starts += [offset + int(s) for s in b.doc_starts]
        offset += b.tokens.size
    for start, n in zip(starts, lengths, strict=True):
        if n <= seq_len:
            assert start // seq_len == (start + n - 1) // seq_len  # never cut
    # a padded row (other than the very last) is padded because the next document did not fit in it
    length_at = dict(zip(starts, lengths, strict=True))
    for r, (_row, v) in enumerate(rows[:-1]):
        if v < seq_len:
            assert seq_len - v < length_at[(r + 1) * seq_len] <= seq_len


def test_round_trip_through_the_lake(lake_root):
    lake = Lake.at(str(lake_root))
    rng = np.random.default_rng(7)
    docs = {"file_level": _docs(rng, 25, 30), "repo_level": _docs(rng, 4, 90)}
    _write(lake, docs, {"file_level": 16, "repo_level": 32, "commits": 16})

    index = read_index(lake, "s1")
    assert index["sources"]["commits"] == {"seq_len": 16, "num_sequences": 0, "num_tokens": 0, "num_padding": 0,
                                           "num_documents": 0, "shards": []}
    for source, expected in docs.items():
        shards = TokenShards(lake, "s1", source)
        assert shards.num_tokens == sum(d.size for d in expected)
        assert len(shards) == index["sources"][source]["num_sequences"] > 1
        assert len(index["sources"][source]["shards"]) > 1  # shard_tokens forces several shards
        got = list(shards.documents())
        assert len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            assert np.array_equal(a, b)
        tokens, starts = shards[0]
        assert tokens.dtype == np.uint32 and tokens.shape == (shards.seq_len,)
        assert starts[0] == 0 and np.array_equal(tokens[: expected[0].size][: shards.seq_len],
                                                 expected[0][: shards.seq_len])
        last = len(shards) - 1
        mask = shards.loss_mask(last)
        assert mask.sum() == shards.valid_tokens(last)
        assert np.all(shards[last][0][mask == 0] == PAD)
    assert len(TokenShards(lake, "s1", "commits")) == 0


def test_arrays_are_memory_mapped_npy(lake_root):
    lake = Lake.at(str(lake_root))
    _write(lake, {"file_level": _docs(np.random.default_rng(1), 5, 20)},
           {"file_level": 8, "repo_level": 32, "commits": 8})
    shards = TokenShards(lake, "s1", "file_level")
    assert isinstance(shards._shards[0].tokens, np.memmap)
    key = read_index(lake, "s1")["sources"]["file_level"]["shards"][0]["files"]["tokens"]
    assert np.load(lake.storage.local_path(key), mmap_mode="r").dtype == np.uint32


def test_rows_out_of_range_and_unknown_source_are_clear_errors(lake_root):
    lake = Lake.at(str(lake_root))
    _write(lake, {"file_level": _docs(np.random.default_rng(2), 3, 5)},
           {"file_level": 8, "repo_level": 8, "commits": 8})
    shards = TokenShards(lake, "s1", "file_level")
    with pytest.raises(IndexError, match="out of range"):
        shards[len(shards)]
    with pytest.raises(ValueError, match="unknown token source"):
        TokenShards(lake, "s1", "web")


def test_an_unknown_format_is_refused(lake_root):
    lake = Lake.at(str(lake_root))
    _write(lake, {}, {"file_level": 8, "repo_level": 8, "commits": 8})
    info = lake.require("s1", "dataset_build")
    key = f"{info.prefix}/{INDEX}"
    index = json.loads(lake.storage.read_bytes(key))
    lake.storage.write_bytes(key, json.dumps({**index, "format": "other/9"}).encode())
    with pytest.raises(ValueError, match="unknown token shard format"):
        read_index(lake, "s1")


def test_a_shard_that_disagrees_with_the_index_is_refused(lake_root):
    lake = Lake.at(str(lake_root))
    _write(lake, {"file_level": _docs(np.random.default_rng(3), 4, 10)},
           {"file_level": 8, "repo_level": 8, "commits": 8})
    key = read_index(lake, "s1")["sources"]["file_level"]["shards"][0]["files"]["tokens"]
    np.save(lake.storage.local_path(key), np.zeros((1, 4), dtype=np.uint32))
    with pytest.raises(ValueError, match="has shape"):
        TokenShards(lake, "s1", "file_level")


@pytest.mark.s3
def test_an_s3_lake_is_read_through_a_local_cache(s3_server, s3_root, tmp_path):
    lake = Lake.at(s3_root, endpoint_url=s3_server)
    docs = _docs(np.random.default_rng(5), 12, 30)
    _write(lake, {"file_level": docs}, {"file_level": 16, "repo_level": 16, "commits": 16})
    shards = TokenShards(lake, "s1", "file_level", cache_dir=tmp_path / "cache")
    assert all(np.array_equal(a, b) for a, b in zip(shards.documents(), docs, strict=True))
    cached = sorted(p.name for p in (tmp_path / "cache").rglob("*.npy"))
    assert cached and all(name.startswith("shard-") for name in cached)
    assert isinstance(shards._shards[0].tokens, np.memmap)
