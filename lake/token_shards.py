"""Packed token shards: the contract between the dataset build (Spark/CPU) and pretraining (GPU pods).

The ``dataset_build`` stage tokenizes the curated documents and packs them into fixed-length sequences, one
dataset per *source* so the training mixture is chosen at training time, not baked in at build time::

    {attempt}/token_index.json                                   the index (below), written once at the end
    {attempt}/{source}/{shard}.tokens.npy      uint32 [n_seq, seq_len]   token ids, row-major
    {attempt}/{source}/{shard}.doc_starts.npy  int64  [n_starts]         flat offsets (seq * seq_len + pos), sorted
    {attempt}/{source}/{shard}.valid.npy       uint32 [n_seq]            real tokens at the head of each row

``source`` is one of :data:`SOURCES` (``file_level``, ``repo_level``, ``commits``). Every array is a plain
``.npy`` file, so ``np.load(path, mmap_mode="r")`` maps it without reading it; on an S3 lake the reader first
copies the shard to a local cache directory and maps the copy.

Packing (see :class:`SequencePacker`): each document is its tokens followed by ``eos_id`` (and preceded by
``bos_id`` when the build asks for it); documents are laid end to end and cut every ``seq_len`` tokens, so a
long document continues in the next row; padding is always at the end of a row, never inside one. ``doc_starts`` holds every position where a document *begins*; a row
whose first entry is not 0 opens with the tail of the previous row's last document. To mask attention per
document, treat position 0 and every ``doc_starts`` entry as the start of a segment. A row can be short: its
first ``valid[i]`` tokens are real and the rest is ``pad_id``, carrying no loss (``TokenShards.loss_mask``).
That happens on the last row of a shard and, for sources packed with ``align`` (repository-level and commit
documents, whose point is to be seen whole), before a document that would not fit in the rest of a row.

The index (``token_index.json``)::

    {"format": "seedcoder-token-shards/1", "dtype": "uint32", "vocab_size": V,
     "pad_id": P, "eos_id": E, "bos_id": B, "seq_len": L (regular context),
     "tokenizer": {"release": R, "stage": "tokenizer", "uri": "..."},
     "sources": {"file_level": {"seq_len": L, "num_sequences": n, "num_tokens": t, "num_padding": p,
                                "num_documents": d, "shards": [{"name": ..., "sequences": n, "tokens": t,
                                "padding": p, "documents": d, "files": {"tokens": key, "doc_starts": key,
                                "valid": key}}], "fim_rate": r, "aligned": a}, ...}}

``fim_rate`` (the FIM rate the build applied to the source) and ``aligned`` (whether documents that fit a row
start on a fresh row) are present when the writer recorded them (the dataset build always does).

``num_tokens`` counts real tokens (padding excluded). Every source in :data:`SOURCES` is always present in the
index, possibly with no shards (an empty ``commits`` source when the snapshot has no commits).
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lake.stage import Lake, Partition
from lake.storage import Storage

log = logging.getLogger(__name__)

FORMAT = "seedcoder-token-shards/1"
INDEX = "token_index.json"
SOURCES = ("file_level", "repo_level", "commits")
DTYPE = np.uint32
ARRAYS = ("tokens", "doc_starts", "valid")


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


@dataclass
class PackedBlock:
    """A block of packed rows: what one shard file set holds."""

    tokens: np.ndarray      # uint32 [n_seq, seq_len]
    doc_starts: np.ndarray  # int64 flat offsets
    valid: np.ndarray       # uint32 [n_seq]
    documents: int

    @property
    def real_tokens(self) -> int:
        return int(self.valid.sum())


class SequencePacker:
    """Lay documents end to end and cut rows of ``seq_len`` tokens, remembering where each document starts.

    ``align=True`` (long-context sources) never splits a document that fits in one row: when it does not fit
    in what is left of the current row, that rest is padded and the document starts a new row, so a whole
    repository is seen in one context. Longer documents still continue across rows.

    Pure (no I/O), so the packing rule is tested on its own. ``max_rows`` bounds a block: when it fills up,
    :meth:`add` returns it and the packer continues with a fresh block.
    """

    def __init__(self, seq_len: int, pad_id: int, *, max_rows: int, align: bool = False):
        if seq_len < 2:
            raise ValueError(f"seq_len must be at least 2, got {seq_len}")
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.seq_len = seq_len
        self.pad_id = pad_id
        self.max_rows = max_rows
        self.align = align
        self._reset()

    def _reset(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._starts: list[int] = []
        self._valid: list[int] = []  # real tokens of each finished row of the block
        self._fill = 0               # positions used in the block, padding included
        self._row_fill = 0           # positions used in the current row
        self._row_real = 0           # real tokens in the current row
        self._documents = 0

    @property
    def capacity(self) -> int:
        return self.seq_len * self.max_rows

    def add(self, doc: np.ndarray) -> list[PackedBlock]:
        """Append one document (already ending in eos); return the blocks it completed."""
        doc = np.asarray(doc, dtype=DTYPE)
        if doc.ndim != 1 or doc.size == 0:
            raise ValueError(f"a document must be a non-empty 1-D token array, got shape {doc.shape}")
        done: list[PackedBlock] = []
        if self.align and self._row_fill and doc.size <= self.seq_len < self._row_fill + doc.size:
            self._pad_row()
            if self._fill == self.capacity:
                done.append(self._emit())
        self._starts.append(self._fill)
        self._documents += 1
        pos = 0
        while pos < doc.size:
            take = min(doc.size - pos, self.seq_len - self._row_fill)
            self._chunks.append(doc[pos : pos + take])
            self._fill += take
            self._row_fill += take
            self._row_real += take
            pos += take
            if self._row_fill == self.seq_len:
                self._end_row()
                if self._fill == self.capacity:
                    done.append(self._emit())
        return done

    def flush(self) -> PackedBlock | None:
        """The partial block (last row padded), or None when nothing is pending."""
        return self._emit() if self._fill else None

    def _end_row(self) -> None:
        self._valid.append(self._row_real)
        self._row_fill = self._row_real = 0

    def _pad_row(self) -> None:
        missing = self.seq_len - self._row_fill
        self._chunks.append(np.full(missing, self.pad_id, dtype=DTYPE))
        self._fill += missing
        self._end_row()

    def _emit(self) -> PackedBlock:
        if self._row_fill:
            self._pad_row()
        flat = np.concatenate(self._chunks)
        block = PackedBlock(flat.reshape(-1, self.seq_len), np.asarray(self._starts, dtype=np.int64),
                            np.asarray(self._valid, dtype=DTYPE), self._documents)
        self._reset()
        return block


@dataclass
class ShardInfo:
    """One shard as the index lists it."""

    name: str
    sequences: int
    tokens: int
    padding: int
    documents: int
    files: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sequences": self.sequences, "tokens": self.tokens, "padding": self.padding,
                "documents": self.documents, "files": dict(self.files)}


class ShardWriter:
    """Packs documents of one source into shards under ``{attempt}/{source}/``.

    Used inside a :class:`~lake.stage.StageRun` (``ShardWriter.for_run(run, source, ...)``) or, on a Spark
    executor, from the storage and attempt prefix the driver hands over. ``name`` makes shard names unique
    per writer (e.g. the Spark partition), so parallel writers never collide and a re-run rewrites the same keys.
    """

    def __init__(self, storage: Storage, attempt_prefix: str, source: str, *, seq_len: int, pad_id: int,
                 shard_tokens: int = 1 << 26, name: str = "00000", align: bool = False):
        if source not in SOURCES:
            raise ValueError(f"unknown token source {source!r}; expected one of {SOURCES}")
        self.storage = storage
        self.prefix = f"{attempt_prefix}/{source}"
        self.source = source
        self.name = name
        self.packer = SequencePacker(seq_len, pad_id, max_rows=max(1, shard_tokens // seq_len), align=align)
        self.shards: list[ShardInfo] = []

    @classmethod
    def for_run(cls, run, source: str, **kw) -> ShardWriter:
        return cls(run.storage, run.attempt_prefix, source, **kw)

    def add(self, doc: np.ndarray) -> None:
        for block in self.packer.add(doc):
            self._write(block)

    def add_all(self, docs: Iterable[np.ndarray]) -> ShardWriter:
        for doc in docs:
            self.add(doc)
        return self

    def close(self) -> list[ShardInfo]:
        block = self.packer.flush()
        if block is not None:
            self._write(block)
        return self.shards

    def _write(self, block: PackedBlock) -> None:
        shard = f"shard-{self.name}-{len(self.shards):05d}"
        files = {}
        for array in ARRAYS:
            key = f"{self.prefix}/{shard}.{array}.npy"
            self.storage.write_bytes(key, _npy_bytes(getattr(block, array)))
            files[array] = key
        padding = block.tokens.size - block.real_tokens
        self.shards.append(ShardInfo(shard, int(block.tokens.shape[0]), block.real_tokens, padding,
                                     block.documents, files))
        log.info("wrote %s/%s: %d rows, %d tokens, %d documents", self.source, shard, block.tokens.shape[0],
                 block.real_tokens, block.documents)


def build_index(*, seq_lens: dict[str, int], shards: dict[str, list[ShardInfo | dict]], vocab_size: int,
                pad_id: int, eos_id: int, bos_id: int | None, tokenizer: dict[str, str],
                fim_rates: dict[str, float] | None = None, aligned: dict[str, bool] | None = None) -> dict[str, Any]:
    """The index document; ``shards`` maps each source to its shards in reading order.

    ``fim_rates`` and ``aligned`` (per source, optional) record how the build made the rows, so a training
    phase can check that the shards it mixes were built with the FIM rate it expects.
    """
    sources = {}
    for source in SOURCES:
        items = [s.to_dict() if isinstance(s, ShardInfo) else dict(s) for s in shards.get(source, [])]
        sources[source] = {
            "seq_len": seq_lens[source],
            "num_sequences": sum(s["sequences"] for s in items),
            "num_tokens": sum(s["tokens"] for s in items),
            "num_padding": sum(s["padding"] for s in items),
            "num_documents": sum(s["documents"] for s in items),
            "shards": items,
        }
        if fim_rates is not None:
            sources[source]["fim_rate"] = fim_rates[source]
        if aligned is not None:
            sources[source]["aligned"] = aligned[source]
    return {"format": FORMAT, "dtype": "uint32", "vocab_size": vocab_size, "pad_id": pad_id, "eos_id": eos_id,
            "bos_id": bos_id, "seq_len": seq_lens["file_level"], "tokenizer": tokenizer, "sources": sources}


def write_index(run, index: dict[str, Any]) -> str:
    return run.write_bytes(INDEX, (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())


def tokenizer_location(index: dict[str, Any]) -> tuple[Partition, str]:
    """The partition and stage of the tokenizer the shards were built with (their release's own)."""
    ref = index.get("tokenizer") or {}
    if not ref.get("release"):
        raise ValueError(f"the token index names no tokenizer release (tokenizer: {ref})")
    return Partition.release(ref["release"]), ref.get("stage") or "tokenizer"


def read_index(lake: Lake, snapshot: str | Partition, stage: str = "dataset_build") -> dict[str, Any]:
    info = lake.require(snapshot, stage)
    index = json.loads(lake.storage.read_bytes(f"{info.prefix}/{INDEX}"))
    if index.get("format") != FORMAT:
        raise ValueError(f"{lake.storage.uri(info.prefix)}/{INDEX}: unknown token shard format "
                         f"{index.get('format')!r} (expected {FORMAT})")
    return index


def default_cache_dir() -> Path:
    return Path(os.environ.get("SEEDCODER_SHARD_CACHE", Path.home() / ".cache" / "seedcoder" / "token_shards"))


@dataclass
class _Shard:
    tokens: np.ndarray
    doc_starts: np.ndarray
    valid: np.ndarray
    first: int  # global index of the shard's first row


class TokenShards:
    """Random access to the packed rows of one source: ``tokens, doc_starts = shards[i]``.

    Arrays are memory-mapped (local lake) or fetched once into ``cache_dir`` and mapped (S3 lake), so opening
    a source costs only the index read and ``shards[i]`` touches one row.
    """

    def __init__(self, lake: Lake, snapshot: str | Partition, source: str, *, stage: str = "dataset_build",
                 cache_dir: str | os.PathLike[str] | None = None):
        if source not in SOURCES:
            raise ValueError(f"unknown token source {source!r}; expected one of {SOURCES}")
        self.lake = lake
        self.source = source
        self.index = read_index(lake, snapshot, stage)
        self.meta = self.index["sources"][source]
        self.seq_len = int(self.meta["seq_len"])
        self._cache = Path(cache_dir) if cache_dir else default_cache_dir()
        self._shards: list[_Shard] = []
        first = 0
        for shard in self.meta["shards"]:
            arrays = {name: self._map(shard["files"][name]) for name in ARRAYS}
            if arrays["tokens"].shape != (shard["sequences"], self.seq_len):
                raise ValueError(f"shard {shard['files']['tokens']} has shape {arrays['tokens'].shape}, "
                                 f"index says ({shard['sequences']}, {self.seq_len})")
            self._shards.append(_Shard(first=first, **arrays))
            first += shard["sequences"]
        self._firsts = np.array([s.first for s in self._shards], dtype=np.int64)
        self._len = first

    def _map(self, key: str) -> np.ndarray:
        local = self.lake.storage.local_path(key)
        if local is None:
            local = self._cache / key
            if not local.exists():
                local.parent.mkdir(parents=True, exist_ok=True)
                tmp = local.with_name(local.name + ".part")
                tmp.write_bytes(self.lake.storage.read_bytes(key))
                os.replace(tmp, local)
        return np.load(local, mmap_mode="r", allow_pickle=False)

    def __len__(self) -> int:
        return self._len

    @property
    def num_tokens(self) -> int:
        return int(self.meta["num_tokens"])

    def _locate(self, i: int) -> tuple[_Shard, int]:
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"row {i} out of range for {self.source} ({self._len} rows)")
        shard = self._shards[int(np.searchsorted(self._firsts, i, side="right")) - 1]
        return shard, i - shard.first

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``i``'s tokens and the positions in it where documents start."""
        shard, row = self._locate(i)
        lo = int(np.searchsorted(shard.doc_starts, row * self.seq_len, side="left"))
        hi = int(np.searchsorted(shard.doc_starts, (row + 1) * self.seq_len, side="left"))
        return shard.tokens[row], np.asarray(shard.doc_starts[lo:hi] - row * self.seq_len, dtype=np.int64)

    def loss_mask(self, i: int) -> np.ndarray:
        """1 where the token counts in the loss, 0 on padding."""
        shard, row = self._locate(i)
        return (np.arange(self.seq_len) < int(shard.valid[row])).astype(np.uint8)

    def valid_tokens(self, i: int) -> int:
        shard, row = self._locate(i)
        return int(shard.valid[row])

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(self._len):
            yield self[i]

    def documents(self) -> Iterator[np.ndarray]:
        """Every document of the source in packing order, re-assembled across rows (each still ends in eos)."""
        pending: list[np.ndarray] = []
        for i in range(self._len):
            tokens, starts = self[i]
            head = 0
            for start in (int(s) for s in starts):
                if start > head:
                    pending.append(np.asarray(tokens[head:start]))
                if pending:
                    yield np.concatenate(pending)
                    pending = []
                head = start
            pending.append(np.asarray(tokens[head : self.valid_tokens(i)]))
        if pending:
            yield np.concatenate(pending)
