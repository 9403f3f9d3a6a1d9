"""FIM, tokenization and packing of one group of documents into token shards (runs on Spark executors).

The build assigns every document to a *group* ``(source, part)`` by a seeded hash of its id and orders it
inside the group by another seeded hash, so what a group holds and in which order does not depend on Spark's
partitioning or on the number of executors. One group is packed by one :class:`~lake.token_shards.ShardWriter`
into shards named ``shard-{part}-{k}``; when the group is complete a resume marker
(``_shards/{source}-{part}.done``, the :class:`~lake.stage.StageRun` marker format) records its shards, so a
re-run of a killed build skips finished groups and rewrites the others under the same names.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from lake.storage import open_storage
from lake.token_shards import ShardWriter
from lake.tokens import from_json
from spark_jobs.dataset import fim
from spark_jobs.dataset.documents import Pieces, encode_documents, from_rows

log = logging.getLogger(__name__)

ENCODE_BATCH = 256
RESULT_SCHEMA = "source string, part int, info string"


@dataclass(frozen=True)
class PackSpec:
    """Everything an executor needs to pack a group, picklable (no clients, no tokenizer objects)."""

    lake_root: str
    s3_endpoint_url: str | None
    s3_region: str
    attempt_prefix: str
    tokenizer_json: str
    seq_lens: dict[str, int]
    fim_rates: dict[str, float]
    align: dict[str, bool]
    seed: int
    pad_id: int
    eos_id: int
    bos_id: int | None
    shard_tokens: int
    fingerprint: str
    done: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    def storage(self):
        return open_storage(self.lake_root, endpoint_url=self.s3_endpoint_url, region=self.s3_region)


@lru_cache(maxsize=4)
def cached_tokenizer(tokenizer_json: str):
    """One tokenizer per executor process: parsing a 155K-token ``tokenizer.json`` costs about a second."""
    return from_json(tokenizer_json)


def marker_name(source: str, part: int) -> str:
    return f"{source}-{part:05d}"


def marker_key(attempt_prefix: str, source: str, part: int) -> str:
    return f"{attempt_prefix}/_shards/{marker_name(source, part)}.done"


def pack_group(spec: PackSpec, source: str, part: int, docs: Iterable[tuple[str, Pieces]], storage=None) -> dict:
    """FIM, encode and pack one group's documents (already in order); write its shards and its marker."""
    storage = storage or spec.storage()
    tokenizer = cached_tokenizer(spec.tokenizer_json)
    writer = ShardWriter(storage, spec.attempt_prefix, source, seq_len=spec.seq_lens[source], pad_id=spec.pad_id,
                         shard_tokens=spec.shard_tokens, name=f"{part:05d}", align=spec.align[source])
    counts = {"documents": 0, "fim": 0, "tokens": 0}
    batch: list[Pieces] = []

    def flush() -> None:
        for ids in encode_documents(tokenizer, batch, eos_id=spec.eos_id, bos_id=spec.bos_id):
            writer.add(ids)
            counts["tokens"] += int(ids.size)
        batch.clear()

    for doc_id, pieces in docs:
        pieces, applied = fim.apply(pieces, rate=spec.fim_rates[source], seed=spec.seed, doc_id=doc_id)
        counts["documents"] += 1
        counts["fim"] += applied
        batch.append(pieces)
        if len(batch) >= ENCODE_BATCH:
            flush()
    flush()
    info = {**counts, "fingerprint": spec.fingerprint, "shards": [s.to_dict() for s in writer.close()]}
    storage.write_bytes(marker_key(spec.attempt_prefix, source, part), json.dumps(info, sort_keys=True).encode())
    log.info("packed %s part %d: %d documents, %d tokens", source, part, counts["documents"], counts["tokens"])
    return info


def _rows(batches: Iterator) -> Iterator[tuple[str, int, str, Pieces]]:
    for batch in batches:
        columns = batch.to_pydict()
        for source, part, doc_id, pieces in zip(columns["source"], columns["part"], columns["doc_id"],
                                                columns["pieces"], strict=True):
            yield source, int(part), doc_id, from_rows(pieces)


def pack_partition(spec: PackSpec, batches: Iterator) -> Iterator:
    """``mapInArrow`` body: rows sorted by (source, part, order) in, one result row per packed group out."""
    import itertools

    import pyarrow as pa

    schema = pa.schema([("source", pa.string()), ("part", pa.int32()), ("info", pa.string())])
    storage = spec.storage()
    for (source, part), rows in itertools.groupby(_rows(batches), key=lambda r: (r[0], r[1])):
        if (source, part) in spec.done:
            continue
        info = pack_group(spec, source, part, ((doc_id, pieces) for _s, _p, doc_id, pieces in rows), storage)
        yield pa.RecordBatch.from_pylist([{"source": source, "part": part, "info": json.dumps(info)}], schema=schema)
