"""Exact ground truth for the near-dedup benchmark: every pair of files whose shingle sets have Jaccard >= t.

Independent of the engine under test: shingles are the token strings (``shingles.TOKEN``, the definition) joined by
a space and hashed with xxh3-64 in Python; candidates come from an all-pairs similarity join with prefix filtering
(Bayardo et al., "Scaling up all pairs similarity search", 2007): order every set's elements by ascending document
frequency; two sets of Jaccard >= t share an element among their first ``|x| - ceil(t |x|) + 1`` (each set's own
prefix), so only files sharing a prefix element are compared, and every such candidate is verified with an exact
set intersection (``np.intersect1d``). Nothing is sampled: recall is measured against all true pairs.
"""

from __future__ import annotations

import logging
from multiprocessing import Pool

import numpy as np
from xxhash import xxh3_64_intdigest

from spark_jobs.near_dedup.shingles import TOKEN

log = logging.getLogger("near_dedup_truth")
NGRAM = 5


def _hash_sets(texts: list[str]) -> list[np.ndarray]:
    out = []
    for text in texts:
        toks = TOKEN.findall(text.encode("utf-8", "surrogatepass"))
        grams = set(map(b" ".join, zip(*(toks[i:] for i in range(NGRAM)), strict=False)))  # windows end at the last
        out.append(np.unique(np.fromiter(map(xxh3_64_intdigest, grams), dtype=np.uint64, count=len(grams))))
    return out


def shingle_sets(texts: list[str], workers: int = 2, chunk: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct xxh3 hashes of every text's shingle strings, concatenated; offsets of texts + 1)."""
    parts = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    with Pool(workers) as pool:
        sets = [s for part in pool.imap(_hash_sets, parts) for s in part]
    offsets = np.zeros(len(sets) + 1, dtype=np.int64)
    np.cumsum([s.size for s in sets], out=offsets[1:])
    return (np.concatenate(sets) if sets else np.empty(0, dtype=np.uint64)), offsets


def set_jaccard(values: np.ndarray, offsets: np.ndarray, a: int, b: int) -> float:
    sa, sb = values[offsets[a] : offsets[a + 1]], values[offsets[b] : offsets[b + 1]]
    if sa.size == 0 or sb.size == 0:
        return 0.0
    inter = np.intersect1d(sa, sb, assume_unique=True).size
    return inter / (sa.size + sb.size - inter)


def similar_pairs(values: np.ndarray, offsets: np.ndarray, threshold: float) -> dict[tuple[int, int], float]:
    """{(a, b): Jaccard} for every pair of sets a < b with Jaccard >= ``threshold`` (exact, all pairs)."""
    lengths = np.diff(offsets)
    docs = lengths.size
    doc_of = np.repeat(np.arange(docs, dtype=np.int64), lengths)
    tokens, inverse, df = np.unique(values, return_inverse=True, return_counts=True)
    rank_of_token = np.empty(tokens.size, dtype=np.int64)
    rank_of_token[np.lexsort((tokens, df))] = np.arange(tokens.size)  # rarest first, ties by value
    ranks = rank_of_token[inverse]
    del tokens, df, inverse
    order = np.argsort(doc_of * (ranks.max(initial=0) + 1) + ranks, kind="stable")
    position = np.arange(values.size) - offsets[doc_of[order]]
    prefix = lengths - np.ceil(threshold * lengths - 1e-9).astype(np.int64) + 1
    chosen = order[position < prefix[doc_of[order]]]
    entry_doc, entry_token = doc_of[chosen], ranks[chosen]
    by_token = np.lexsort((entry_doc, entry_token))
    entry_doc, entry_token = entry_doc[by_token], entry_token[by_token]
    starts = np.flatnonzero(np.concatenate(([True], entry_token[1:] != entry_token[:-1])))
    sizes = np.diff(np.append(starts, entry_token.size))
    codes = []
    for size in np.unique(sizes[sizes > 1]):
        first = starts[sizes == size]
        i, j = np.triu_indices(int(size), 1)
        a, b = entry_doc[(first[:, None] + i).ravel()], entry_doc[(first[:, None] + j).ravel()]
        small, large = np.minimum(lengths[a], lengths[b]), np.maximum(lengths[a], lengths[b])
        ok = small >= threshold * large - 1e-9  # the length filter: J <= |small| / |large|
        codes.append(a[ok] * docs + b[ok])
    candidates = np.unique(np.concatenate(codes)) if codes else np.empty(0, dtype=np.int64)
    log.info("ground truth: %d sets, %d prefix candidates to verify", docs, candidates.size)
    out = {}
    for code in candidates.tolist():
        a, b = divmod(code, docs)
        j = set_jaccard(values, offsets, a, b)
        if j >= threshold:
            out[(a, b)] = j
    return out

