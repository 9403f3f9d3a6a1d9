"""Per-item fault isolation, shared by every stage on Spark executors and on GPU pods.

A stage handles millions of items (GH Archive lines, tarball members, repositories, files, commits, documents).
One of them must never take the job down: whatever it raises becomes an :class:`ItemError` (the item, a reason
named after the step, the exception's type and message), recorded like any other reject, and the stage goes on.

But a bug that fails *every* item must not pass as a stage full of rejects either. :class:`ItemFailurePolicy`
caps the share of items that may fail this way; :func:`check_failures` raises :class:`TooManyItemFailures`,
failing the stage loudly (nothing is committed, the last committed partition stays), when the cap is passed.
Expected refusals (a binary file, a malformed JSON line) are not failures: they have their own reasons and do
not count against the cap. Only the unexpected does.

>>> value, error = isolated("demo_error", "item-1", int, "12")
>>> value, error
(12, None)
>>> value, error = isolated("demo_error", "item-2", int, "x")
>>> error.reason, error.error_type, error.detail
('demo_error', 'ValueError', "ValueError: invalid literal for int() with base 10: 'x'")
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lake.config import ItemFailurePolicy

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_DETAIL = 500


@dataclass(frozen=True)
class ItemError:
    """One item a step could not handle."""

    item: str  # what failed, as the stage names it: "owner/repo", "owner/repo:path", "2026-10-01-3:line 17"
    reason: str  # the step's failure reason, "<step>_error": it becomes a drop reason / reject reason
    error_type: str  # the exception's class name
    message: str

    @property
    def detail(self) -> str:
        """``Type: message``, bounded: the reject record's detail column."""
        return f"{self.error_type}: {self.message}"[:MAX_DETAIL]

    def to_dict(self) -> dict[str, str]:
        return {"item": self.item, "reason": self.reason, "error_type": self.error_type, "detail": self.detail}


def item_error(reason: str, item: str, err: BaseException) -> ItemError:
    """The record of ``err`` raised while handling ``item`` (logged once, with the item named)."""
    message = _safe_text(str(err))[:MAX_DETAIL]
    error = ItemError(_safe_text(item)[:MAX_DETAIL], reason, type(err).__name__, message)
    log.warning("%s: %s failed, recorded as %s (%s)", reason.removesuffix("_error"), error.item, reason,
                error.detail)
    return error


def isolated(reason: str, item: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T | None, ItemError | None]:
    """``(fn(*args, **kwargs), None)``, or ``(None, error)`` when it raises anything but an interrupt.

    ``Exception`` covers what bad data can trigger deep inside a library: RecursionError from a deeply nested
    JSON line, UnicodeEncodeError from an undecodable name, MemoryError from a decompression bomb.
    """
    try:
        return fn(*args, **kwargs), None
    except Exception as err:  # noqa: BLE001 - the point: any failure of one item is recorded, not raised
        return None, item_error(reason, item, err)


def _safe_text(text: str) -> str:
    """``text`` with lone surrogates (undecodable bytes smuggled through ``surrogateescape``) made printable."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class TooManyItemFailures(RuntimeError):
    """More items failed than the policy allows: the stage fails loudly rather than commit a pile of rejects."""


@dataclass
class FailureTally:
    """Failures of one step of a stage, counted by exception type, with the first few kept as examples."""

    step: str
    items: int = 0
    failures: int = 0
    by_type: Counter = field(default_factory=Counter)
    examples: list[dict[str, str]] = field(default_factory=list)

    def add(self, error: ItemError | dict[str, str]) -> None:
        record = error.to_dict() if isinstance(error, ItemError) else error
        self.failures += 1
        self.by_type[record["error_type"]] += 1
        if len(self.examples) < 5:
            self.examples.append(record)

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "failures": self.failures, "by_type": dict(sorted(self.by_type.items())),
                "examples": self.examples}


def check_failures(stage: str, tally: FailureTally, policy: ItemFailurePolicy) -> None:
    """Raise :class:`TooManyItemFailures` when ``tally`` passes ``policy``'s cap.

    >>> policy = ItemFailurePolicy()
    >>> check_failures("s", FailureTally("fetch", items=10, failures=1), policy)
    >>> check_failures("s", FailureTally("fetch", items=1000, failures=10), policy)
    >>> check_failures("s", FailureTally("fetch", items=1000, failures=11), policy)
    Traceback (most recent call last):
    ...
    lake.faults.TooManyItemFailures: s: 11 of 1000 items failed in fetch (1.1% > 1.0% allowed); first: []
    """
    allowed = max(policy.always_allowed, int(policy.max_share * tally.items))
    if tally.failures > allowed:
        share = tally.failures / max(tally.items, 1)
        raise TooManyItemFailures(
            f"{stage}: {tally.failures} of {tally.items} items failed in {tally.step} ({share:.1%} > "
            f"{policy.max_share:.1%} allowed); first: {tally.examples[:3]}")
