"""The datatrove-style base of every filter stage: a step sees one document, the base does everything else.

A :class:`BaseFilter` implements only ``filter(doc) -> bool | (bool, reason) | (bool, reason, detail)``; the reason
doubles as the drop-reason name in ``_stats.json`` and the ``reason`` column of the quarantine record. A
:class:`PipelineStep` that rewrites documents (PII redaction) implements ``process(doc)`` instead. Steps count
their own metrics with :meth:`PipelineStep.count` (e.g. redactions per kind, files without a grammar).

:func:`apply_batch` is the one place where a step meets data: an Arrow record batch of FILES rows in, an Arrow
batch of OUTCOME rows out (the record, its verdict and its metrics). Both the Spark runner (``mapInArrow``) and
the local runner call it, so the two engines cannot disagree. A step that raises on a document does not kill the
stage (:mod:`lake.faults`): the document is quarantined with reason ``<step>_error`` and ``Type: message`` as its
detail, and counted in the metrics ``item_error`` and ``item_error:<Type>``, which the runner holds against the
``item_failures`` cap.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lake.faults import isolated
from lake.schemas import FILES, QUARANTINE

log = logging.getLogger(__name__)

# What apply_batch emits per input record: the (possibly rewritten) record, why it was dropped (null: kept),
# and the step's metric increments for this record (summed into _stats.json by the runner).
OUTCOME = pa.schema(
    list(FILES)
    + [pa.field("reason", pa.string()), pa.field("detail", pa.string()), pa.field("stage", pa.string(), False),
       pa.field("metrics", pa.map_(pa.string(), pa.int64()))]
)


@dataclass(frozen=True)
class Verdict:
    """A step's decision on one document."""

    keep: bool
    reason: str | None = None
    detail: str | None = None
    content: str | None = None  # the rewritten content, None when unchanged


KEEP = Verdict(True)


class PipelineStep:
    """One document in, one verdict out. Subclasses are configured through typed constructor arguments.

    A step that needs a document's repository (the C-family compile check needs its headers) names the languages in
    ``context_languages``; the runner then sets ``repository`` (a :class:`~spark_jobs.filters.c_compile.Repository`
    of the repository's files in those languages) before each such document."""

    name = "step"
    context_languages: frozenset[str] = frozenset()
    repository: Any = None

    def __init__(self) -> None:
        self._metrics: Counter[str] = Counter()

    def process(self, doc: dict[str, Any]) -> Verdict:
        raise NotImplementedError

    def count(self, metric: str, n: int = 1) -> None:
        """Add to a free-form metric of the current document (summed over the stage into ``metrics``)."""
        if n:
            self._metrics[metric] += n

    def take_metrics(self) -> dict[str, int]:
        taken, self._metrics = self._metrics, Counter()
        return dict(taken)


class BaseFilter(PipelineStep):
    """A step that only keeps or drops: implement :meth:`filter`."""

    name = "filter"

    def filter(self, doc: dict[str, Any]) -> bool | tuple[bool, str] | tuple[bool, str, str]:
        raise NotImplementedError

    def process(self, doc: dict[str, Any]) -> Verdict:
        result = self.filter(doc)
        if isinstance(result, bool):
            return KEEP if result else Verdict(False, self.name)
        keep, reason, *detail = result
        return KEEP if keep else Verdict(False, reason or self.name, detail[0] if detail else None)


def _num_lines(old_content: str, old_lines: int, new_content: str) -> int:
    """Line count after a rewrite, shifted by the newline delta so the crawl's counting convention is kept."""
    return max(0, old_lines + new_content.count("\n") - old_content.count("\n"))


def process_record(step: PipelineStep, record: dict[str, Any], stage: str) -> dict[str, Any]:
    """One FILES record -> one OUTCOME record (never raises on a bad document)."""
    record = dict(record)
    record["content"] = record.get("content") or ""
    verdict, error = isolated(f"{step.name}_error", f"{record.get('path')} ({record.get('id')})", step.process, record)
    if error is not None:  # one bad document must not kill a stage over millions; it is recorded instead
        step.take_metrics()
        step.count("item_error")
        step.count(f"item_error:{error.error_type}")
        verdict = Verdict(False, error.reason, error.detail)
    if verdict.content is not None and verdict.content != record["content"]:
        data = verdict.content.encode("utf-8", "surrogatepass")
        record["num_lines"] = _num_lines(record["content"], record.get("num_lines") or 0, verdict.content)
        record["content"] = verdict.content
        record["sha256"] = hashlib.sha256(data).hexdigest()
        record["size_bytes"] = len(data)
    record.update(reason=None if verdict.keep else verdict.reason, detail=None if verdict.keep else verdict.detail,
                  stage=stage, metrics=sorted(step.take_metrics().items()))
    return record


def apply_batch(step: PipelineStep, batch: pa.RecordBatch, stage: str,
                repositories: Mapping[str, Any] | None = None) -> pa.RecordBatch:
    """A batch of FILES rows through ``step``: the OUTCOME rows, in input order. ``repositories`` (repo name ->
    its files, for the step's ``context_languages``) gives each such document its repository."""
    rows = []
    for row in batch.to_pylist():
        if repositories is not None and row.get("language") in step.context_languages:
            step.repository = repositories.get(row["repo"])
        rows.append(process_record(step, row, stage))
    return pa.RecordBatch.from_pylist(rows, schema=OUTCOME)


def apply_batches(step: PipelineStep, batches: Iterator[pa.RecordBatch], stage: str,
                  repositories: Mapping[str, Any] | None = None) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: input columns are projected onto FILES so an extra upstream column cannot break us."""
    for batch in batches:
        if batch.num_rows:
            yield apply_batch(step, conform(batch), stage, repositories)


CONTEXT_FLAG = "_context"  # a row of the repository context rather than a document to judge


def apply_batches_in_context(step: PipelineStep, batches: Iterator[pa.RecordBatch], stage: str,
                             max_context_bytes: int, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body over rows clustered by repository, each repository's context rows (``_context`` true,
    in path order) before its documents: the context becomes the repository the step sees for each document.
    Holds one repository's context at a time; a context is cut at ``max_context_bytes`` (files taken in path
    order while they fit; the repository is marked ``truncated``)."""
    from spark_jobs.filters.c_compile import Repository

    name, repository, out = None, Repository(), []
    for batch in batches:
        if not batch.num_rows:
            continue
        flags = batch.column(CONTEXT_FLAG).to_pylist()
        for row, is_context in zip(conform(batch).to_pylist(), flags, strict=True):
            if row["repo"] != name:
                name, repository = row["repo"], Repository()
            if is_context:
                repository.offer(row["path"], row["content"] or "", row["size_bytes"] or 0, max_context_bytes)
                continue
            step.repository = repository
            out.append(process_record(step, row, stage))
            if len(out) >= batch_rows:
                yield pa.RecordBatch.from_pylist(out, schema=OUTCOME)
                out = []
    if out:
        yield pa.RecordBatch.from_pylist(out, schema=OUTCOME)


def repositories_of(rows: Iterator[dict[str, Any]], max_context_bytes: int) -> dict[str, Any]:
    """repo -> Repository of ``rows`` (repo, path, content, size_bytes), each cut at ``max_context_bytes`` in path
    order: what :func:`apply_batches_in_context` builds, for the local engine."""
    from spark_jobs.filters.c_compile import Repository

    by_repo: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_repo.setdefault(row["repo"], []).append(row)
    out = {}
    for name, members in by_repo.items():
        out[name] = repository = Repository()
        for row in sorted(members, key=lambda r: r["path"]):
            repository.offer(row["path"], row["content"] or "", row["size_bytes"] or 0, max_context_bytes)
    return out


def conform(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with exactly the FILES columns, in order, cast to the FILES types."""
    missing = [f.name for f in FILES if f.name not in batch.schema.names]
    if missing:
        raise ValueError(f"input records lack FILES columns {missing}; got {batch.schema.names}")
    columns = [batch.column(f.name).cast(f.type) for f in FILES]
    return pa.RecordBatch.from_arrays(columns, schema=FILES.with_metadata(None))


def split_outcomes(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(kept FILES records, QUARANTINE records) of an OUTCOME table."""
    import pyarrow.compute as pc

    dropped = pc.is_valid(table.column("reason"))
    kept = table.filter(pc.invert(dropped)).select(FILES.names).cast(FILES)
    quarantine = table.filter(dropped).select(QUARANTINE.names).cast(QUARANTINE)
    return kept, quarantine
