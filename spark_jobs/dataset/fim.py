"""Fill-in-the-middle in the SPM layout, the only one Seed-Coder uses.

A document chosen for FIM (with probability ``rate``: 0.5 in regular pretraining, 0.1 in continued
pretraining) is split at two random character positions into prefix, middle and suffix, and rewritten as::

    <[fim-suffix]>SUFFIX<[fim-prefix]>PREFIX<[fim-middle]>MIDDLE

one FIM sample per document. Positions are uniform over the document's *units*: every character of a text
piece is one unit and every special token already in the document (the file separators of a repository
document) is one unit, so a special token is never cut. The choice and the split points come from a random
generator seeded with ``(seed, document id)``, which makes them independent of partitioning and run order.

:func:`invert` restores the original document, which the tests check as a property.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from lake.tokens import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX
from spark_jobs.dataset.documents import Piece, Pieces, normalize

MARKERS = (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE)


def doc_rng(seed: int, doc_id: str) -> random.Random:
    """The generator of one document: a str seed is hashed with SHA-512, stable across processes."""
    return random.Random(f"fim:{seed}:{doc_id}")


def units(pieces: Sequence[Piece]) -> int:
    return sum(1 if is_special else len(value) for is_special, value in pieces)


def cut(pieces: Sequence[Piece], start: int, end: int) -> Pieces:
    """The pieces covering units ``[start, end)``.

    >>> cut([(False, "abc"), (True, "<[SEP▁TOKEN]>"), (False, "de")], 2, 5)
    ((False, 'c'), (True, '<[SEP▁TOKEN]>'), (False, 'd'))
    """
    out: list[Piece] = []
    pos = 0
    for is_special, value in pieces:
        size = 1 if is_special else len(value)
        lo, hi = max(start, pos), min(end, pos + size)
        if lo < hi:
            out.append((True, value) if is_special else (False, value[lo - pos : hi - pos]))
        pos += size
    return normalize(out)


def spm(pieces: Sequence[Piece], rng: random.Random) -> Pieces:
    """The SPM rewrite at two uniform random positions."""
    n = units(pieces)
    a, b = sorted((rng.randint(0, n), rng.randint(0, n)))
    prefix, middle, suffix = cut(pieces, 0, a), cut(pieces, a, b), cut(pieces, b, n)
    return ((True, FIM_SUFFIX), *suffix, (True, FIM_PREFIX), *prefix, (True, FIM_MIDDLE), *middle)


def apply(pieces: Sequence[Piece], *, rate: float, seed: int, doc_id: str) -> tuple[Pieces, bool]:
    """The document, rewritten as a FIM sample with probability ``rate``; also whether it was."""
    if rate <= 0.0:
        return normalize(pieces), False
    rng = doc_rng(seed, doc_id)
    if rng.random() >= rate:
        return normalize(pieces), False
    if any(is_special and value in MARKERS for is_special, value in pieces):
        raise ValueError(f"document {doc_id} already contains a FIM marker")
    return spm(pieces, rng), True


def is_fim(pieces: Sequence[Piece]) -> bool:
    return bool(pieces) and pieces[0] == (True, FIM_SUFFIX)


def invert(pieces: Sequence[Piece]) -> Pieces:
    """PREFIX + MIDDLE + SUFFIX of an SPM sample (a non-FIM document is returned normalised)."""
    pieces = tuple(pieces)
    if not is_fim(pieces):
        return normalize(pieces)
    try:
        i_prefix = pieces.index((True, FIM_PREFIX))
        i_middle = pieces.index((True, FIM_MIDDLE))
    except ValueError:
        raise ValueError("malformed FIM sample: a marker is missing") from None
    if not 0 < i_prefix < i_middle:
        raise ValueError("malformed FIM sample: markers out of SPM order")
    suffix, prefix, middle = pieces[1:i_prefix], pieces[i_prefix + 1 : i_middle], pieces[i_middle + 1 :]
    return normalize((*prefix, *middle, *suffix))
