"""Code-aware shingling: the set a document's MinHash and its exact Jaccard are computed over.

Prose normalisers (datatrove's, text-dedup's) lowercase, strip punctuation and split on whitespace. For code that
is wrong: ``a[i] = b(c)`` and ``a i b c`` would be the same document. Here a token is a run of word characters or
one single non-space, non-word character, so brackets, operators and separators are kept; whitespace, indentation
and case are kept meaningful only through the tokens they separate. A shingle is ``n`` consecutive tokens
(word n-grams, n = 5 by default), encoded as the tokens joined by one space.

Documents with fewer than ``n`` tokens have no shingle at all: they are exempt from near dedup (exact dedup already
removed their byte-identical copies) and counted, never silently merged.

A shingle's 64-bit hash is computed from its tokens' hashes, not from its joined string: each distinct token of
a document is hashed once (xxh3-64), and the n hashes of a window are combined with a polynomial over 2^64 and
mixed with the MurmurHash3 64-bit finalizer, vectorized over the whole document. That is about 1.5x faster than
joining and hashing every shingle string (``benchmarks/near_dedup_signatures.py``), and the set is the same:
two different shingles collide with probability ~2^-64. The 64-bit set verifies candidates (exact Jaccard); its
low 32 bits are the MinHash input, exactly what datasketch's ``MinHash(hashfunc=int).update_batch(values)`` takes.
"""

from __future__ import annotations

import re

import numpy as np
from xxhash import xxh3_64_intdigest

TOKEN = re.compile(r"\w+|[^\w\s]")
LOW32 = np.uint64(0xFFFFFFFF)
POLY = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the window polynomial (2^64 / golden ratio)


def tokens(text: str) -> list[str]:
    """Words and single punctuation characters, in order.

    >>> tokens("if (a[i] >= 10): return f(x)")
    ['if', '(', 'a', '[', 'i', ']', '>', '=', '10', ')', ':', 'return', 'f', '(', 'x', ')']
    """
    return TOKEN.findall(text)


def shingles(text: str, ngram: int = 5) -> set[str]:
    """The distinct word n-grams of a document; empty when it has fewer than ``ngram`` tokens.

    >>> sorted(shingles("x = f(y)", ngram=5))
    ['= f ( y )', 'x = f ( y']
    >>> shingles("pass", ngram=5)
    set()
    """
    toks = tokens(text)
    return {" ".join(toks[i : i + ngram]) for i in range(len(toks) - ngram + 1)}


def shingle_hashes(text: str, ngram: int = 5) -> np.ndarray:
    """Sorted distinct 64-bit hashes of the document's shingles (uint64), the exact-Jaccard set.

    >>> h = shingle_hashes("a b c d e f")
    >>> h.dtype, len(h)
    (dtype('uint64'), 2)
    """
    toks = tokens(text)
    if len(toks) < ngram:
        return np.empty(0, dtype=np.uint64)
    vocab: dict[str, int] = {}
    ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in toks), dtype=np.int64, count=len(toks))
    token_hashes = np.fromiter((xxh3_64_intdigest(t.encode("utf-8", "surrogatepass")) for t in vocab),
                               dtype=np.uint64, count=len(vocab))[ids]
    windows = len(toks) - ngram + 1
    h = token_hashes[:windows].copy()
    for j in range(1, ngram):
        h *= POLY
        h += token_hashes[j : j + windows]
    return np.unique(fmix64(h))


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: spreads the polynomial's low-entropy bits over all 64 (wrapping uint64)."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def minhash_inputs(hashes64: np.ndarray) -> np.ndarray:
    """The 32-bit values a MinHash consumes: the low half of each shingle hash (duplicates are harmless)."""
    return (hashes64 & LOW32).astype(np.uint32)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted, distinct hash sets (0.0 when both are empty).

    >>> jaccard(np.array([1, 2, 3], dtype=np.uint64), np.array([2, 3, 4], dtype=np.uint64))
    0.5
    """
    if a.size == 0 and b.size == 0:
        return 0.0
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter)
