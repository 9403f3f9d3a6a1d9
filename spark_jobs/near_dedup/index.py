"""The incremental signature index: which earlier snapshots a snapshot is deduplicated against."""

from __future__ import annotations

import logging

from lake.ordering import require_earlier
from lake.stage import Lake

log = logging.getLogger(__name__)
STAGE = "near_dedup"


def index_snapshots(lake: Lake, snapshot: str, configured: list[str] | None, input_stage: str = "exact_dedup"
                    ) -> list[str]:
    """Earlier snapshots whose committed ``signatures`` this run dedups against.

    ``configured`` None means every snapshot that sorts before ``snapshot``; each of them that entered the pipeline
    (crawl or ``input_stage`` committed) must have its near_dedup committed, or the run is refused naming it
    (:mod:`lake.ordering`): the index would otherwise depend on timing. An explicit list must name committed
    snapshots only (a typo must not silently disable incremental dedup).
    """
    if configured is None:
        require_earlier(lake, snapshot, STAGE, entered=("crawl", input_stage))
        found = [s for s in lake.snapshots() if s < snapshot and lake.commit_info(s, STAGE) is not None]
        log.info("incremental index: %d earlier snapshot(s) %s", len(found), found)
        return found
    for name in configured:
        if name == snapshot:
            raise ValueError(f"index_snapshots names the snapshot being deduplicated ({snapshot!r})")
        lake.require(name, STAGE)
    return list(configured)


def check_scheme(found: set[str], expected: str, snapshots: list[str]) -> None:
    """Refuse to compare signatures made with other shingling, permutations or seed."""
    wrong = sorted(found - {expected})
    if wrong:
        raise ValueError(f"signature index of snapshots {snapshots} uses scheme(s) {wrong}, this run uses "
                         f"{expected!r}: re-run near_dedup on those snapshots or set index_snapshots: []")
