"""Commit samples get what files got before they enter a release: secrets/PII redaction and decontamination.

The crawl's ``commits`` never pass the file filters, yet their messages, READMEs, trees and diffs end up in
training documents. Each text field is redacted with the same detectors as files (``spark_jobs.filters.pii``),
and a commit whose message, README or diffs share a word 10-gram with an evaluation set is dropped (the index of
``lake.ngrams``, the one the file filter and the dataset build use).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from spark_jobs.filters.pii import DETECTORS, Detector, redact

TEXT_FIELDS = ("message", "readme", "tree")


def clean_commit(record: dict, detectors: tuple[Detector, ...] = DETECTORS) -> tuple[dict, Counter]:
    """The commit with every text field and diff redacted, and the redactions per kind.

    >>> rec = {"message": "Ping admin@corp.example.com", "readme": None, "tree": "a.py",
    ...        "changes": [{"path": "a.py", "status": "M", "diff": "+host = '8.8.8.8'", "truncated": False}]}
    >>> out, counts = clean_commit(rec)
    >>> out["message"], out["changes"][0]["diff"], dict(counts)
    ('Ping <EMAIL>', "+host = '<IP_ADDRESS>'", {'email': 1, 'ip_address': 1})
    """
    counts: Counter = Counter()
    out = dict(record)
    for field in TEXT_FIELDS:
        if out.get(field):
            out[field], found = redact(out[field], detectors)
            counts.update(found)
    changes = []
    for change in out.get("changes") or []:
        change = dict(change)
        if change.get("diff"):
            change["diff"], found = redact(change["diff"], detectors)
            counts.update(found)
        changes.append(change)
    out["changes"] = changes
    return out, counts


def commit_text(record: dict) -> str:
    """What decontamination reads of a commit: message, README and diffs.

    >>> commit_text({"message": "m", "readme": None, "changes": [{"diff": "+x"}, {"diff": None}]})
    'm\\n+x'
    """
    parts = [record.get("message"), record.get("readme")] + [c.get("diff") for c in record.get("changes") or []]
    return "\n".join(p for p in parts if p)


def clean_batches(batches: Iterator, schema, index_bytes: bytes | None, kinds: tuple[str, ...]) -> Iterator:
    """``mapInArrow`` body: redacted commit records plus ``contamination`` (matched set or null) and
    ``redactions`` (count per kind)."""
    import pyarrow as pa

    from spark_jobs.dataset.decontaminate import _index

    detectors = tuple(d for d in DETECTORS if d.kind in kinds)
    index = _index(index_bytes) if index_bytes else None
    for batch in batches:
        rows = []
        for record in batch.to_pylist():
            cleaned, counts = clean_commit(record, detectors)
            hit, name = index.contaminated(commit_text(cleaned)) if index else (False, None)
            cleaned["contamination"] = name if hit else None
            cleaned["redactions"] = sorted(counts.items())
            rows.append(cleaned)
        yield pa.RecordBatch.from_pylist(rows, schema=schema)
