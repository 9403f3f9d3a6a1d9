"""Checkpoints in the lake (local filesystem or S3), written so a kill at any moment leaves a usable one.

Layout inside the stage attempt::

    checkpoints/step-00000100/<engine files>        DeepSpeed's (or torch's) files, every rank's shards
    checkpoints/step-00000100/trainer_state.json    written last by rank 0: the checkpoint's commit marker

``trainer_state.json`` holds the step, the data loader state, the architecture and the resolved config;
a checkpoint without it is incomplete and ignored. Resuming compares the architecture with the run's and
refuses a mismatch instead of loading weights of another shape. Engines save to a local scratch directory
first (DeepSpeed writes files, not objects); each node's first rank then copies that node's files to the
lake, and loading copies them back (skipped when the scratch copy is already there).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from lake.storage import Storage

log = logging.getLogger(__name__)

STATE = "trainer_state.json"
DIR = "checkpoints"
_TAG = re.compile(r"^step-(\d{8})$")


class ArchitectureMismatch(ValueError):
    """A checkpoint was saved by a model of another shape."""


def tag(step: int) -> str:
    return f"step-{step:08d}"


def checkpoint_prefix(attempt_prefix: str, step: int) -> str:
    return f"{attempt_prefix}/{DIR}/{tag(step)}"


def complete_steps(storage: Storage, attempt_prefix: str) -> list[int]:
    """Steps of the complete checkpoints of an attempt, oldest first."""
    steps = set()
    for key in storage.list(f"{attempt_prefix}/{DIR}"):
        parts = key[len(attempt_prefix) + 1 :].split("/")
        if len(parts) == 3 and parts[2] == STATE and (m := _TAG.match(parts[1])):
            steps.add(int(m.group(1)))
    return sorted(steps)


def read_state(storage: Storage, attempt_prefix: str, step: int) -> dict[str, Any]:
    return json.loads(storage.read_bytes(f"{checkpoint_prefix(attempt_prefix, step)}/{STATE}"))


def check_architecture(saved: dict[str, Any], current: dict[str, Any], where: str) -> None:
    """Raise :class:`ArchitectureMismatch` naming every differing field."""
    diff = {k: (saved.get(k), current.get(k)) for k in sorted(set(saved) | set(current))
            if saved.get(k) != current.get(k)}
    if diff:
        details = ", ".join(f"{k}: checkpoint {a!r} vs run {b!r}" for k, (a, b) in diff.items())
        raise ArchitectureMismatch(f"checkpoint {where} was saved by a different architecture ({details}); "
                                   f"start a fresh attempt (--fresh) or restore the old preset")


def upload_dir(storage: Storage, local: Path, prefix: str) -> int:
    """Copy every file under ``local`` to ``prefix``; returns bytes copied."""
    total = 0
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(local).as_posix()}"
        total += put_file(storage, path, key)
    return total


def put_file(storage: Storage, path: Path, key: str) -> int:
    """One file into the lake: a copy on a filesystem lake, a streamed multipart upload on S3."""
    size = path.stat().st_size
    target = storage.local_path(key)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".tmp-{target.name}")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
    elif hasattr(storage, "client"):
        full = f"{storage.prefix}/{key}" if storage.prefix else key
        storage.client.upload_file(str(path), storage.bucket, full)
    else:
        storage.write_bytes(key, path.read_bytes())
    return size


def download_prefix(storage: Storage, prefix: str, local: Path, *, skip: tuple[str, ...] = ()) -> int:
    """Copy every object under ``prefix`` into ``local`` (streamed from S3); a local lake skips files whose
    scratch copy already has the same size."""
    total = 0
    for key in storage.list(prefix):
        rel = key[len(prefix) + 1 :]
        if rel in skip:
            continue
        path = local / rel
        source = storage.local_path(key)
        if source is not None:
            if path.exists() and path.stat().st_size == source.stat().st_size:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, path)
        elif hasattr(storage, "client"):
            path.parent.mkdir(parents=True, exist_ok=True)
            full = f"{storage.prefix}/{key}" if storage.prefix else key
            storage.client.download_file(storage.bucket, full, str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(storage.read_bytes(key))
        total += path.stat().st_size
    return total


def write_state(storage: Storage, attempt_prefix: str, step: int, state: dict[str, Any]) -> None:
    storage.write_bytes(f"{checkpoint_prefix(attempt_prefix, step)}/{STATE}",
                        (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())


def prune(storage: Storage, attempt_prefix: str, keep: int) -> list[int]:
    """Delete all but the newest ``keep`` complete checkpoints, and any incomplete one older than them."""
    steps = complete_steps(storage, attempt_prefix)
    if not steps:
        return []
    kept = set(steps[-keep:])
    removed = []
    for key in storage.list(f"{attempt_prefix}/{DIR}"):
        parts = key[len(attempt_prefix) + 1 :].split("/")
        m = _TAG.match(parts[1]) if len(parts) > 2 else None
        if m and int(m.group(1)) not in kept and int(m.group(1)) < max(kept) and int(m.group(1)) not in removed:
            removed.append(int(m.group(1)))
    for step in removed:
        storage.delete_prefix(checkpoint_prefix(attempt_prefix, step))
    return sorted(removed)
