"""Snapshot order for incremental stages: snapshot N is deduplicated only after every earlier snapshot.

Near dedup is incremental: a snapshot keeps only what no earlier snapshot has, by comparing against the committed
signature index of the earlier ones. If month N+1 were deduplicated before month N's near dedup committed, the index
would silently lack month N and cross-month duplicates would survive depending on timing. So snapshot N may be
deduplicated only when every earlier snapshot that entered the pipeline (its crawl, or the incremental stage's input,
is committed) has its incremental stage committed too. Snapshot ids order as strings (``2026-08 < 2026-09``).

Both the stage (which refuses, naming the missing snapshot) and the dedup DAG (whose sensor waits for it) ask
:func:`missing_earlier`, so a backfill that crawls several months at once ends with the same committed records as
running them one after another.
"""

from __future__ import annotations

from collections.abc import Iterable

from lake.stage import Lake, check_snapshot


class EarlierSnapshotsPending(ValueError):
    """An earlier snapshot's incremental stage is not committed yet."""


def missing_earlier(lake: Lake, snapshot: str, stage: str, entered: Iterable[str] = ("crawl",)) -> list[str]:
    """Earlier snapshots that entered the pipeline (a stage of ``entered`` committed) without ``stage`` committed.

    >>> import tempfile
    >>> from lake.stage import StageRun
    >>> lake = Lake.at(tempfile.mkdtemp())
    >>> for snap, stages in {"2026-08": ["crawl", "near_dedup"], "2026-09": ["crawl"]}.items():
    ...     for name in stages:
    ...         StageRun(lake, snap, name).commit() and None
    >>> missing_earlier(lake, "2026-10", "near_dedup"), missing_earlier(lake, "2026-09", "near_dedup")
    (['2026-09'], [])
    """
    check_snapshot(snapshot)
    entered = tuple(entered)
    return [s for s in lake.snapshots()
            if s < snapshot and lake.commit_info(s, stage) is None
            and any(lake.commit_info(s, name) is not None for name in entered)]


def require_earlier(lake: Lake, snapshot: str, stage: str, entered: Iterable[str] = ("crawl",)) -> None:
    """Raise :class:`EarlierSnapshotsPending` naming every earlier snapshot whose ``stage`` is not committed."""
    missing = missing_earlier(lake, snapshot, stage, entered)
    if missing:
        raise EarlierSnapshotsPending(
            f"{stage} of snapshot {snapshot!r} must run after every earlier snapshot's {stage}, and "
            f"{', '.join(repr(m) for m in missing)} {'has' if len(missing) == 1 else 'have'} no committed {stage} "
            f"yet: run the dedup DAG for {missing[0]!r} first (it is incremental: snapshot {snapshot!r} keeps only "
            f"what no earlier snapshot has), or name the index explicitly with stages.{stage}.index_snapshots")
