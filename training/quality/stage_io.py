"""Lake plumbing shared by the quality stages: resume guards and moving model directories in and out."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from lake.stage import Lake, Partition, StageRun

log = logging.getLogger(__name__)
INPUT_MARKER = "_input"


def guard_resume(run: StageRun, inputs: dict[str, str]) -> None:
    """Refuse to resume an attempt whose finished shards were computed from other inputs.

    ``inputs`` maps each upstream stage to its committed attempt; it is recorded in the first run of an attempt
    and compared on every resume, so a resumed run never mixes shards of two input commits.
    """
    if run.shard_done(INPUT_MARKER):
        recorded = run.shard_info(INPUT_MARKER)
        if recorded != inputs:
            raise ValueError(
                f"stage {run.stage} ({run.snapshot}): the unfinished attempt {run.attempt} was started on inputs "
                f"{recorded}, but the committed inputs are now {inputs}; rerun with --fresh to start over")
        log.info("resuming attempt %s on the same inputs %s", run.attempt, inputs)
        return
    run.mark_shard_done(INPUT_MARKER, inputs)


def materialize(lake: Lake, snapshot: str | Partition, stage: str, dataset: str) -> Path:
    """A local directory holding a committed dataset's files (the lake's own files on a local lake)."""
    info = lake.require(snapshot, stage)
    prefix = f"{info.prefix}/{dataset}"
    keys = lake.dataset_keys(snapshot, stage, dataset)
    local = lake.storage.local_path(prefix)
    if local is not None:
        return local
    target = Path(tempfile.mkdtemp(prefix=f"{stage}-{dataset}-"))
    for key in keys:
        dest = target / key[len(prefix) + 1:]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(lake.storage.read_bytes(key))
    log.info("downloaded %d files of %s/%s/%s to %s", len(keys), info.partition.prefix, stage, dataset, target)
    return target


def upload_dir(run: StageRun, dataset: str, directory: Path) -> list[str]:
    """Copy every file under ``directory`` into ``dataset`` of the running attempt."""
    keys = []
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        keys.append(run.write_bytes(f"{dataset}/{path.relative_to(directory).as_posix()}", path.read_bytes()))
    return keys
