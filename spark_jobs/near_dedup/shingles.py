"""Code-aware shingling: the set a document's MinHash and its exact Jaccard are computed over.

Prose normalisers (datatrove's, text-dedup's) lowercase, strip punctuation and split on whitespace. For code that
is wrong: ``a[i] = b(c)`` and ``a i b c`` would be the same document. Here tokens are read from the document's
UTF-8 bytes: a token is a run of word bytes (ASCII letters, digits, ``_``, and every byte of a non-ASCII
character, so identifiers, strings and comments in any script stay whole) or one single other byte (ASCII
punctuation and operators); ASCII whitespace only separates. Brackets, operators and separators are kept; case is
kept. A shingle is ``n`` consecutive tokens (word n-grams, n = 5 by default), encoded as the tokens joined by one
space.

Documents with fewer than ``n`` tokens have no shingle at all: they are exempt from near dedup (exact dedup already
removed their byte-identical copies) and counted, never silently merged.

A shingle's 64-bit hash is computed from its tokens' hashes, not from its joined string, and for a whole batch of
documents at once with numpy, with no Python object per token: every byte is classified through a 256-entry
table; a token's bytes are read 8 at a time as little-endian words straight from the buffer, masked to its
length, folded with the MurmurHash3 64-bit finalizer (fmix64) and mixed with the length (tokens of up to 8 bytes,
nearly all of them, hash without collisions); the n token hashes of a window are combined with a polynomial over
2^64 and mixed again. Two different shingles collide with probability ~2^-64. The 64-bit set verifies candidates
(exact Jaccard); its low 32 bits are the MinHash input, exactly what datasketch's
``MinHash(hashfunc=int).update_batch(values)`` takes. ``benchmarks/near_dedup_signatures.py`` measures the
signing against datasketch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

# The two byte classes, as regex class bodies: the token pattern and the byte table below are both built from them.
_WORD_BYTES = rb"A-Za-z0-9_\x80-\xff"  # ASCII letters, digits, _ and every byte of a non-ASCII character
_SPACE_BYTES = rb" \t\n\r\f\v"  # ASCII whitespace
TOKEN = re.compile(rb"[%s]+|[^%s%s]" % (_WORD_BYTES, _WORD_BYTES, _SPACE_BYTES))
LOW32 = np.uint64(0xFFFFFFFF)
POLY = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the window polynomial (2^64 / golden ratio)
LENGTH_KEY = np.uint64(0xD6E8FEB86659FD93)  # a token's length enters its hash with this odd key

SPACE, WORD, PUNCT = 0, 1, 2


def _byte_class(byte: int) -> int:
    one = bytes([byte])
    if re.fullmatch(rb"[%s]" % _SPACE_BYTES, one):
        return SPACE
    return WORD if re.fullmatch(rb"[%s]" % _WORD_BYTES, one) else PUNCT


BYTE_CLASS = np.array([_byte_class(b) for b in range(256)], dtype=np.uint8)
_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(8)] + [(1 << 64) - 1], dtype=np.uint64)  # low n bytes


def tokens(text: str) -> list[str]:
    """Words and single punctuation characters, in order (the strings the hashed shingles stand for).

    >>> tokens("if (a[i] >= 10): return f(x)")
    ['if', '(', 'a', '[', 'i', ']', '>', '=', '10', ')', ':', 'return', 'f', '(', 'x', ')']
    >>> tokens("naïve → x")
    ['naïve', '→', 'x']
    """
    return [t.decode("utf-8", "surrogatepass") for t in TOKEN.findall(text.encode("utf-8", "surrogatepass"))]


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
    """Sorted distinct 64-bit hashes of one document's shingles (uint64), the exact-Jaccard set.

    >>> h = shingle_hashes("a b c d e f")
    >>> h.dtype, len(h)
    (dtype('uint64'), 2)
    """
    return batch_shingle_hashes([text], ngram)[0]


def batch_shingle_hashes(texts: Sequence[str | None] | pa.Array | pa.ChunkedArray, ngram: int = 5
                         ) -> list[np.ndarray]:
    """Per document, its sorted distinct uint64 shingle hashes; a null document has none.

    ``texts`` is a list of strings or an Arrow string column (read in place, without a Python string per row).
    """
    data, offsets = _utf8(texts)
    docs = len(offsets) - 1
    token_hashes, token_docs = _token_hashes(data, offsets)
    windows = len(token_hashes) - ngram + 1
    if windows <= 0:
        return [np.empty(0, dtype=np.uint64) for _ in range(docs)]
    h = token_hashes[:windows].copy()
    for j in range(1, ngram):
        h *= POLY
        h += token_hashes[j : j + windows]
    inside = token_docs[:windows] == token_docs[ngram - 1 :]  # the window does not cross a document boundary
    h = fmix64(h)[inside]
    ends = np.cumsum(np.bincount(token_docs[:windows][inside], minlength=docs))
    return [_distinct(part) for part in np.split(h, ends[:-1])]


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.unique`` without its per-call overhead, which dominates for small arrays)."""
    values = np.sort(values)
    if values.size > 1:
        values = values[np.concatenate(([True], values[1:] != values[:-1]))]
    return values


def _utf8(texts) -> tuple[np.ndarray, np.ndarray]:
    """(all documents' UTF-8 bytes as one uint8 array, int64 offsets of each document: docs + 1 entries)."""
    if type(texts).__module__.startswith("pyarrow"):  # pyarrow is imported only for Arrow input
        return _arrow_utf8(texts)
    encoded = [b"" if t is None else t.encode("utf-8", "surrogatepass") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def _arrow_utf8(texts) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow as pa

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not isinstance(texts, pa.Array):
        raise TypeError(f"expected a list of strings or an Arrow string column, got {type(texts).__name__}")
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        raise TypeError(f"expected an Arrow string column, got {texts.type}")
    return arrow_var_width(texts.fill_null("") if texts.null_count else texts)


def arrow_var_width(column) -> tuple[np.ndarray, np.ndarray]:
    """(value bytes as uint8, int64 offsets: len + 1 entries from 0) of an Arrow string/binary column, in place."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    _, offsets_buf, data_buf = column.buffers()
    if offsets_buf is None:  # an empty column may have no buffers at all
        return np.empty(0, dtype=np.uint8), np.zeros(len(column) + 1, dtype=np.int64)
    large = pa.types.is_large_string(column.type) or pa.types.is_large_binary(column.type)
    offsets = np.frombuffer(offsets_buf, dtype=np.int64 if large else np.int32)
    offsets = offsets[column.offset : column.offset + len(column) + 1].astype(np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, dtype=np.uint8)
    return data[offsets[0] : offsets[-1]], offsets - offsets[0]


def _token_hashes(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash of every token, in order; the document of every token) for the concatenated documents.

    Byte-level work is a few boolean passes; everything else runs per token. A token's bytes are read 8 at a time
    as little-endian words straight from the buffer (an unaligned strided view), masked to its length, folded with
    fmix64 between words, and mixed with its length.
    """
    cls = BYTE_CLASS[data]
    word = cls == WORD
    run_start = word.copy()
    run_start[1:] &= ~word[:-1]
    run_end = word.copy()  # the last byte of a word run
    run_end[:-1] &= ~word[1:]
    inner = offsets[1:-1][(offsets[1:-1] > 0) & (offsets[1:-1] < len(data))]
    run_start[inner] = word[inner]  # a word run never continues into the next document
    run_end[inner - 1] = word[inner - 1]
    starts = np.flatnonzero(run_start | (cls == PUNCT))
    if starts.size == 0:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    is_word = word[starts]
    lengths = np.ones(starts.size, dtype=np.int64)
    lengths[is_word] = np.flatnonzero(run_end) + 1 - starts[is_word]
    padded = np.concatenate((data, np.zeros(8, dtype=np.uint8)))
    words = np.ndarray(shape=(data.size,), dtype="<u8", buffer=padded, strides=(1,))
    h = (words[starts] & _MASKS[np.minimum(lengths, 8)]) ^ (lengths.astype(np.uint64) * LENGTH_KEY)
    longer = np.flatnonzero(lengths > 8)
    chunk = 1
    while longer.size:
        rest = np.minimum(lengths[longer] - 8 * chunk, 8)
        h[longer] = fmix64(h[longer]) ^ (words[starts[longer] + 8 * chunk] & _MASKS[rest])
        chunk += 1
        longer = longer[lengths[longer] > 8 * chunk]
    return fmix64(h), np.searchsorted(offsets, starts, side="right") - 1


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
    if a.size == 0 or b.size == 0:
        return 0.0
    if a.size > b.size:
        a, b = b, a
    at = np.searchsorted(b, a)  # both sorted: look each of the smaller set's values up in the larger
    at[at == b.size] = 0
    inter = int(np.count_nonzero(b[at] == a))
    return inter / (a.size + b.size - inter)
