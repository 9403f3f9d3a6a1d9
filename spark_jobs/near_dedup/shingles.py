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

A shingle's 64-bit hash is computed from its tokens' hashes, not from its joined string, by the compiled kernels
of ``kernels.py`` over a whole batch of documents at once with no Python object per token: every byte is classified
through a 256-entry table; a token's bytes are read 8 at a time as little-endian words, folded with the MurmurHash3
64-bit finalizer (fmix64) and mixed with the length (tokens of up to 8 bytes, nearly all of them, hash without
collisions); the n token hashes of a window are combined with a polynomial over 2^64 and mixed again. Two different
shingles collide with probability ~2^-64. The 64-bit set verifies candidates (exact Jaccard); its low 32 bits are
the MinHash input, exactly what datasketch's ``MinHash(hashfunc=int).update_batch(values)`` takes.
``benchmarks/near_dedup_signatures.py`` measures the signing against datasketch.
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
SPACE, WORD, PUNCT = 0, 1, 2  # PUNCT: every byte that is neither a word byte nor whitespace is a one-byte token


def _byte_class(byte: int) -> int:
    one = bytes([byte])
    if re.fullmatch(rb"[%s]" % _SPACE_BYTES, one):
        return SPACE
    return WORD if re.fullmatch(rb"[%s]" % _WORD_BYTES, one) else PUNCT


BYTE_CLASS = np.array([_byte_class(b) for b in range(256)], dtype=np.uint8)


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
    values, offsets = shingle_set_arrays(texts, ngram)
    return np.split(values, offsets[1:-1])


def shingle_set_arrays(texts, ngram: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Every document's sorted distinct uint64 shingle hashes, concatenated, and the docs + 1 offsets (CSR)."""
    from spark_jobs.near_dedup import kernels  # numba: not imported by what needs only the definition (TOKEN)

    data, offsets = utf8_buffers(texts)
    return kernels.shingle_sets(data, offsets, ngram, BYTE_CLASS)


def utf8_buffers(texts) -> tuple[np.ndarray, np.ndarray]:
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


def minhash_inputs(hashes64: np.ndarray) -> np.ndarray:
    """The 32-bit values a MinHash consumes: the low half of each shingle hash (duplicates are harmless)."""
    return (hashes64 & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted, distinct hash sets (0.0 when either is empty).

    >>> jaccard(np.array([1, 2, 3], dtype=np.uint64), np.array([2, 3, 4], dtype=np.uint64))
    0.5
    """
    from spark_jobs.near_dedup import kernels

    return float(kernels.jaccard(a, b))
