"""The document model of the dataset build: text interleaved with special tokens.

A document is a tuple of *pieces*; a piece is ``(special, text)``: ``special`` True means ``text`` names one
special token (``<[SEP▁TOKEN]>``, a FIM marker), False means ordinary text. Keeping specials out of the text
is what makes FIM and repository concatenation unambiguous: text is encoded with special-token look-alikes
treated as plain text (``encode_special_tokens``), so a file that literally contains ``<[fim-prefix]>`` can
never produce the marker's id, and decoding splits exactly where the build put a special token.

Encoding appends ``eos`` to every document (and prepends ``bos`` when asked), which is where the packer's
document boundaries come from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from lake.tokens import EOS, SPECIAL_IDS, SPECIAL_TOKENS

Piece = tuple[bool, str]
Pieces = tuple[Piece, ...]

SPARK_PIECES = "array<struct<special:boolean,text:string>>"


def text(value: str) -> Piece:
    return (False, value)


def special(token: str) -> Piece:
    if token not in SPECIAL_IDS:
        raise ValueError(f"{token!r} is not a special token; expected one of {SPECIAL_TOKENS}")
    return (True, token)


def normalize(pieces: Iterable[Piece]) -> Pieces:
    """Merge adjacent text pieces and drop empty ones, so equal documents compare equal.

    >>> normalize([(False, "a"), (False, ""), (False, "b"), (True, "<[SEP▁TOKEN]>"), (False, "c")])
    ((False, 'ab'), (True, '<[SEP▁TOKEN]>'), (False, 'c'))
    """
    out: list[Piece] = []
    for is_special, value in pieces:
        if is_special:
            out.append((True, value))
        elif value:
            if out and not out[-1][0]:
                out[-1] = (False, out[-1][1] + value)
            else:
                out.append((False, value))
    return tuple(out)


def render(pieces: Iterable[Piece]) -> str:
    """The document as one string, specials written as their names (for display and n-gram checks).

    >>> render([(True, "<[SEP▁TOKEN]>"), (False, "a.py\\nx = 1\\n")])
    '<[SEP▁TOKEN]>a.py\\nx = 1\\n'
    """
    return "".join(value for _special, value in pieces)


def encode_documents(tokenizer, docs: Sequence[Sequence[Piece]], *, eos_id: int = SPECIAL_IDS[EOS],
                     bos_id: int | None = None) -> list[np.ndarray]:
    """Token ids of each document: text pieces batch-encoded in one call, specials as their fixed ids."""
    texts = [value for doc in docs for is_special, value in doc if not is_special]
    encoded = iter(tokenizer.encode_batch_fast(texts, add_special_tokens=False)) if texts else iter(())
    out = []
    for doc in docs:
        ids: list[int] = [] if bos_id is None else [bos_id]
        for is_special, value in doc:
            ids.extend([SPECIAL_IDS[value]] if is_special else next(encoded).ids)
        ids.append(eos_id)
        out.append(np.asarray(ids, dtype=np.uint32))
    return out


def decode_document(tokenizer, ids: Iterable[int], *, eos_id: int = SPECIAL_IDS[EOS],
                    bos_id: int | None = None) -> Pieces:
    """Pieces of an encoded document (the inverse of :func:`encode_documents` for one document)."""
    ids = [int(i) for i in ids]
    if ids and ids[-1] == eos_id:
        ids = ids[:-1]
    if bos_id is not None and ids and ids[0] == bos_id:
        ids = ids[1:]
    pieces: list[Piece] = []
    run: list[int] = []
    for token in ids:
        if token < len(SPECIAL_TOKENS):
            if run:
                pieces.append((False, tokenizer.decode(run, skip_special_tokens=False)))
                run = []
            pieces.append((True, SPECIAL_TOKENS[token]))
        else:
            run.append(token)
    if run:
        pieces.append((False, tokenizer.decode(run, skip_special_tokens=False)))
    return normalize(pieces)


def to_rows(pieces: Iterable[Piece]) -> list[dict]:
    """Pieces as Spark/Arrow struct rows (``SPARK_PIECES``)."""
    return [{"special": is_special, "text": value} for is_special, value in pieces]


def from_rows(rows: Iterable[dict]) -> Pieces:
    return tuple((bool(r["special"]), r["text"]) for r in rows)
