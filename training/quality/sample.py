"""A stratified, seed-reproducible sample of files by language: the files the oracle rates.

Each file gets a rank key ``xxh64(seed, id)``; a language's sample is its files with the smallest keys. The
sample therefore depends only on the seed and the set of file ids, not on file order, partitioning or how
many workers read the input, and growing ``sample_size`` only adds files to an existing sample.
Quotas split ``sample_size`` evenly over languages; a language with fewer files than its share gives the
remainder to the others (water-filling), as the report's sample spread 222,066 files over 21 languages.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import xxhash


def rank_key(seed: int, file_id: str) -> int:
    """The sampling rank of a file: uniform, stable across runs and machines.

    >>> rank_key(0, "abc") == rank_key(0, "abc") != rank_key(1, "abc")
    True
    """
    return xxhash.xxh64_intdigest(file_id.encode(), seed=seed)


def quotas(counts: Mapping[str, int], total: int) -> dict[str, int]:
    """Split ``total`` over languages as evenly as their counts allow (deterministic: ties go by name).

    >>> quotas({"Python": 100, "Go": 3, "C": 100}, 20)
    {'C': 9, 'Go': 3, 'Python': 8}
    >>> quotas({"Python": 5}, 20)
    {'Python': 5}
    """
    out: dict[str, int] = {}
    remaining = total
    pending = sorted((n, lang) for lang, n in counts.items() if n > 0)
    while pending and remaining > 0:
        share, extra = divmod(remaining, len(pending))
        n, lang = pending[0]
        if n <= share:
            out[lang] = n
            remaining -= n
            pending.pop(0)
            continue
        # Every pending language can take its share: hand the remainder out by name order.
        for i, (_n, name) in enumerate(sorted(pending, key=lambda p: p[1])):
            out[name] = share + (1 if i < extra else 0)
        remaining = 0
    return dict(sorted(out.items()))


def choose_ids(batches: Iterable[pa.RecordBatch], *, sample_size: int, seed: int,
               languages: list[str] | None = None) -> tuple[dict[str, str], Counter]:
    """One streaming pass over ``(id, language)`` batches: ``{id: language}`` of the sample, and counts.

    Memory is bounded by ``sample_size`` per language (a max-heap of the smallest keys), not by the input.
    """
    wanted = set(languages or [])
    counts: Counter = Counter()
    heaps: dict[str, list[tuple[int, str]]] = {}
    for batch in batches:
        ids = batch.column("id").to_pylist()
        langs = batch.column("language").to_pylist()
        for file_id, lang in zip(ids, langs, strict=True):
            if wanted and lang not in wanted:
                continue
            counts[lang] += 1
            heap = heaps.setdefault(lang, [])
            item = (-rank_key(seed, file_id), file_id)
            if len(heap) < sample_size:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    chosen: dict[str, str] = {}
    for lang, quota in quotas(counts, sample_size).items():
        smallest = sorted((-neg, fid) for neg, fid in heaps[lang])[:quota]
        chosen.update((fid, lang) for _key, fid in smallest)
    return chosen, counts


def take_rows(batches: Iterable[pa.RecordBatch], ids: Iterable[str], seed: int) -> pa.Table:
    """The full records of ``ids`` from a second pass, in a stable order (language, then rank key)."""
    wanted = pa.array(sorted(set(ids)), pa.string())
    parts = [pa.Table.from_batches([b]).filter(pc.is_in(b.column("id"), value_set=wanted)) for b in batches]
    parts = [p for p in parts if p.num_rows]
    if not parts:
        return pa.table({})
    table = pa.concat_tables(parts)
    langs, file_ids = table.column("language").to_pylist(), table.column("id").to_pylist()
    order = sorted(range(table.num_rows), key=lambda i: (langs[i], rank_key(seed, file_ids[i])))
    return table.take(pa.array(order, pa.int64()))
