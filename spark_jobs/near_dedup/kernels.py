"""Compiled kernels of near dedup (numba): shingling, MinHash, band keys and exact Jaccard, one document at a time.

Profiled on the held-out corpus (large Java / Go / Rust files), the numpy version of the signing step spent its time
building (windows x 8 bytes) temporaries, sorting every document's shingle hashes and permuting (permutations x
values) matrices through memory. Here one pass per document does it all in registers and L1-sized buffers, and
releases the GIL (``nogil``), so that several threads of one process sign at once:

- tokens are read from the UTF-8 bytes exactly as ``shingles.py`` defines them (word runs of ``[A-Za-z0-9_]`` and
  non-ASCII bytes; one token per other non-space byte), each hashed from its bytes 8 at a time (fmix64 between
  words, length mixed in), and the ``n`` token hashes of a window combined by a polynomial over 2^64 + fmix64;
- the window hashes are made distinct with an open-addressing table (one probe per value on average: sorting was
  the single biggest cost of the numpy version);
- each distinct value's low 32 bits go through datasketch's affine32 MinHash (fmix32, then ``a * x + b mod 2^32``
  for every permutation) eight values at a time, so that the signature row is loaded and stored once per eight
  values while the compiler vectorizes over the permutations.

Every function is bit-for-bit the definition in ``shingles.py`` / ``minhash.py``; the tests compare them with the
shingle strings and with datasketch.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from spark_jobs.near_dedup.shingles import SPACE, WORD

U32, U64 = np.uint32, np.uint64
LOW32 = U64(0xFFFFFFFF)
POLY = U64(0x9E3779B97F4A7C15)  # odd multiplier of the window polynomial (2^64 / golden ratio)
LENGTH_KEY = U64(0xD6E8FEB86659FD93)  # a token's length enters its hash with this odd key
BAND_SEED = U64(0x2545F4914F6CDD1D)  # start of every band key's fold
_FMIX64_1, _FMIX64_2 = U64(0xFF51AFD7ED558CCD), U64(0xC4CEB9FE1A85EC53)
_FMIX32_1, _FMIX32_2 = U64(0x85EBCA6B), U64(0xC2B2AE35)
jit = nb.njit(nogil=True, cache=True)


@nb.njit(inline="always")
def _fmix64(h):
    h ^= h >> U64(33)
    h *= _FMIX64_1
    h ^= h >> U64(33)
    h *= _FMIX64_2
    h ^= h >> U64(33)
    return h


@nb.njit(inline="always")
def _fmix32(x):
    """MurmurHash3's 32-bit finalizer on the low 32 bits of ``x`` (uint64 in, value < 2^32 out)."""
    x &= LOW32
    x ^= x >> U64(16)
    x = (x * _FMIX32_1) & LOW32
    x ^= x >> U64(13)
    x = (x * _FMIX32_2) & LOW32
    return x ^ (x >> U64(16))


@jit
def _token_hashes(data, start, end, byte_class, out):
    """Hashes of the tokens of ``data[start:end]`` into ``out``; returns how many."""
    n = 0
    i = start
    while i < end:
        cls = byte_class[data[i]]
        if cls == SPACE:
            i += 1
            continue
        j = i + 1
        if cls == WORD:
            while j < end and byte_class[data[j]] == WORD:
                j += 1
        length = j - i
        h = U64(0)
        for q in range(min(length, 8)):
            h |= U64(data[i + q]) << U64(8 * q)
        h ^= U64(length) * LENGTH_KEY
        pos = i + 8
        while pos < j:
            w = U64(0)
            for q in range(min(j - pos, 8)):
                w |= U64(data[pos + q]) << U64(8 * q)
            h = _fmix64(h) ^ w
            pos += 8
        out[n] = _fmix64(h)
        n += 1
        i = j
    return n


@jit
def _windows(tokens, n, ngram, out):
    """Hashes of the ``ngram``-token windows of ``tokens[:n]`` into ``out``; returns how many (0 below ngram)."""
    m = n - ngram + 1
    for s in range(max(m, 0)):
        h = tokens[s]
        for q in range(1, ngram):
            h = h * POLY + tokens[s + q]
        out[s] = _fmix64(h)
    return max(m, 0)


@jit
def _distinct(values, m, table):
    """Moves the distinct values of ``values[:m]`` to its front (first occurrences, in order); returns how many.

    Open addressing on the values' own top bits (they are fmix64 outputs, uniform), linear probing over the first
    (power of two >= 2m) slots of ``table`` (``_table_slots``), left zeroed. Zero marks an empty slot, so the value
    0 is tracked apart.
    """
    if m == 0:
        return 0
    size, bits = 16, 4
    while size < 2 * m:
        size *= 2
        bits += 1
    mask = size - 1
    shift = U64(64 - bits)
    k = 0
    seen_zero = False
    for i in range(m):
        v = values[i]
        if v == 0:
            if not seen_zero:
                seen_zero = True
                values[k] = v
                k += 1
            continue
        slot = np.int64(v >> shift)
        while True:
            t = table[slot]
            if t == 0:
                table[slot] = v
                values[k] = v
                k += 1
                break
            if t == v:
                break
            slot = (slot + 1) & mask
    for i in range(size):
        table[i] = 0
    return k


@jit
def _minhash(values, k, a, b, sig):
    """``sig[p] = min(sig[p], min over values[:k] of (a[p] * fmix32(v) + b[p]) mod 2^32)``, eight values a step."""
    perms = a.size
    i = 0
    while i + 8 <= k:
        x0, x1 = _fmix32(values[i]), _fmix32(values[i + 1])
        x2, x3 = _fmix32(values[i + 2]), _fmix32(values[i + 3])
        x4, x5 = _fmix32(values[i + 4]), _fmix32(values[i + 5])
        x6, x7 = _fmix32(values[i + 6]), _fmix32(values[i + 7])
        for p in range(perms):
            ap, bp = a[p], b[p]
            h0, h1 = U32((ap * x0 + bp) & LOW32), U32((ap * x1 + bp) & LOW32)
            h2, h3 = U32((ap * x2 + bp) & LOW32), U32((ap * x3 + bp) & LOW32)
            h4, h5 = U32((ap * x4 + bp) & LOW32), U32((ap * x5 + bp) & LOW32)
            h6, h7 = U32((ap * x6 + bp) & LOW32), U32((ap * x7 + bp) & LOW32)
            low = min(min(min(h0, h1), min(h2, h3)), min(min(h4, h5), min(h6, h7)))
            sig[p] = U32(min(U32(sig[p]), low))
        i += 8
    while i < k:
        x = _fmix32(values[i])
        for p in range(perms):
            sig[p] = U32(min(U32(sig[p]), U32((a[p] * x + b[p]) & LOW32)))
        i += 1


def _longest(offsets: np.ndarray) -> int:
    return int(np.max(np.diff(offsets))) if offsets.size > 1 else 0


def _table_slots(longest: int) -> int:
    """Slots ``_distinct`` may use for a document of ``longest`` bytes (at most that many windows)."""
    return 1 << max(4, (2 * (longest + 1) - 1).bit_length())


@jit
def _sign(data, offsets, ngram, byte_class, a, b, longest, table, sigs, counts):
    tokens = np.empty(longest + 1, np.uint64)
    windows = np.empty(longest + 1, np.uint64)
    for d in range(offsets.size - 1):
        n = _token_hashes(data, offsets[d], offsets[d + 1], byte_class, tokens)
        m = _windows(tokens, n, ngram, windows)
        k = _distinct(windows, m, table)
        counts[d] = k
        _minhash(windows, k, a, b, sigs[d])


def sign(data: np.ndarray, offsets: np.ndarray, ngram: int, byte_class: np.ndarray, a: np.ndarray,
         b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signatures (docs x permutations, uint32; all-max for a document without shingles), distinct shingle counts)
    of the documents ``data[offsets[i]:offsets[i+1]]``."""
    docs = offsets.size - 1
    sigs = np.full((docs, a.size), 0xFFFFFFFF, dtype=np.uint32)
    counts = np.zeros(docs, dtype=np.int64)
    if docs:
        longest = _longest(offsets)
        _sign(data, offsets, ngram, byte_class, a, b, longest, np.zeros(_table_slots(longest), np.uint64), sigs,
              counts)
    return sigs, counts


@jit
def _shingle_sets(data, offsets, ngram, byte_class, longest, table, total):
    tokens = np.empty(longest + 1, np.uint64)
    windows = np.empty(longest + 1, np.uint64)
    out = np.empty(total, np.uint64)
    out_offsets = np.zeros(offsets.size, np.int64)
    for d in range(offsets.size - 1):
        n = _token_hashes(data, offsets[d], offsets[d + 1], byte_class, tokens)
        m = _windows(tokens, n, ngram, windows)
        k = _distinct(windows, m, table)
        start = out_offsets[d]
        out[start : start + k] = np.sort(windows[:k])
        out_offsets[d + 1] = start + k
    return out[: out_offsets[-1]], out_offsets


def shingle_sets(data: np.ndarray, offsets: np.ndarray, ngram: int, byte_class: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Every document's sorted distinct 64-bit shingle hashes, concatenated (CSR: values, offsets of docs + 1)."""
    if offsets.size <= 1:
        return np.empty(0, dtype=np.uint64), np.zeros(offsets.size, dtype=np.int64)
    longest = _longest(offsets)
    return _shingle_sets(data, offsets, ngram, byte_class, longest, np.zeros(_table_slots(longest), np.uint64),
                         int(offsets[-1] - offsets[0]) + 1)


@jit
def minhash_values(values, offsets, a, b):
    """Signatures of documents given as their 32-bit MinHash inputs (CSR, uint32; duplicates allowed)."""
    docs = offsets.size - 1
    sigs = np.full((docs, a.size), U32(0xFFFFFFFF), dtype=np.uint32)
    wide = values.astype(np.uint64)
    for d in range(docs):
        _minhash(wide[offsets[d] :], offsets[d + 1] - offsets[d], a, b, sigs[d])
    return sigs


@jit
def band_keys(sigs, bands, rows):
    """One signed 64-bit key per (document, band): the band's ``rows`` values folded with fmix64.

    Keys only have to be equal for equal bands within one run (an index's keys are recomputed from its stored
    signatures), so the fold may change without invalidating stored indexes.
    """
    keys = np.empty((sigs.shape[0], bands), np.int64)
    for d in range(sigs.shape[0]):
        for band in range(bands):
            h = BAND_SEED
            for r in range(rows):
                h = _fmix64(h ^ U64(sigs[d, band * rows + r]))
            keys[d, band] = np.int64(h)
    return keys


@jit
def _intersection(a, b):
    """Size of the intersection of two sorted distinct uint64 arrays (one merge pass)."""
    i = j = inter = 0
    while i < a.size and j < b.size:
        x, y = a[i], b[j]
        if x == y:
            inter += 1
            i += 1
            j += 1
        elif x < y:
            i += 1
        else:
            j += 1
    return inter


@jit
def jaccard(a, b):
    """Exact Jaccard of two sorted distinct uint64 sets (0.0 when either is empty)."""
    if a.size == 0 or b.size == 0:
        return 0.0
    inter = _intersection(a, b)
    return inter / (a.size + b.size - inter)


@jit
def pair_jaccard(values_a, offsets_a, values_b, offsets_b):
    """Exact Jaccard of row i of two CSR collections of sorted distinct uint64 sets, for every row."""
    out = np.empty(offsets_a.size - 1, np.float64)
    for i in range(out.size):
        out[i] = jaccard(values_a[offsets_a[i] : offsets_a[i + 1]], values_b[offsets_b[i] : offsets_b[i + 1]])
    return out


@jit
def agreement(sigs_a, sigs_b):
    """Per row, the fraction of equal signature positions: the MinHash estimate of Jaccard."""
    out = np.empty(sigs_a.shape[0], np.float64)
    for i in range(out.size):
        same = 0
        for p in range(sigs_a.shape[1]):
            same += sigs_a[i, p] == sigs_b[i, p]
        out[i] = same / sigs_a.shape[1]
    return out


@jit
def indexed_jaccard(values, offsets, rows_a, rows_b):
    """Exact Jaccard of sets ``rows_a[i]`` and ``rows_b[i]`` of one CSR collection of sorted distinct sets."""
    out = np.empty(rows_a.size, np.float64)
    for i in range(out.size):
        a, b = rows_a[i], rows_b[i]
        out[i] = jaccard(values[offsets[a] : offsets[a + 1]], values[offsets[b] : offsets[b + 1]])
    return out


@jit
def indexed_agreement(sigs, rows_a, rows_b):
    """MinHash estimate of signature rows ``rows_a[i]`` and ``rows_b[i]`` of one (documents x perms) matrix."""
    out = np.empty(rows_a.size, np.float64)
    for i in range(out.size):
        a, b = rows_a[i], rows_b[i]
        same = 0
        for p in range(sigs.shape[1]):
            same += sigs[a, p] == sigs[b, p]
        out[i] = same / sigs.shape[1]
    return out
