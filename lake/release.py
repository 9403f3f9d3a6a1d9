"""Releases: named, immutable training corpora cut from many snapshots, and the manifest that describes one.

A snapshot is the unit of data work (a month of crawl and everything derived from it; dedup is incremental, so a
snapshot holds what is *new* since the earlier ones). A release is the unit of model work: the union of the
curated files of chosen snapshots, with a pinned tokenizer, the scorer version that curated each snapshot, and
optionally the release it continues from. The dataset build, pretraining and everything downstream read a
release, never a snapshot::

    {lake}/release={name}/release/_SUCCESS                          the cut's commit pointer (immutable once there)
    {lake}/release={name}/release/attempt={a}/manifest.json          the manifest (below)
    {lake}/release={name}/release/attempt={a}/files/part-*.parquet   RELEASE_FILES: curated files + flags
    {lake}/release={name}/release/attempt={a}/commits/...            COMMITS + snapshot: redacted, decontaminated
    {lake}/release={name}/release/attempt={a}/scores/...             id, score, snapshot (repository selection)
    {lake}/release={name}/tokenizer/      the release's tokenizer (trained on its files, or a copy of a pinned one)
    {lake}/release={name}/dataset_build/  packed token shards          {lake}/release={name}/pretrain/  the model

Cutting a release under a name that is already committed is refused (:class:`ReleaseExists`); names are cheap.

The manifest (``manifest.json``, format ``seedcoder-release/1``)::

    {"format": "seedcoder-release/1", "name": "2026-q3", "created_at": "2026-10-02T08:00:00+00:00",
     "input_stage": "quality_filter",
     "snapshots": [{"snapshot": "2026-08", "stage": "quality_filter", "attempt": "...", "committed_at": "...",
                    "files": 4192, "scorer": {"version": "v1", "threshold": 4.21, "threshold_mode": "scorer"},
                    "crawl_attempt": "...", "commits_attempt": "..."}, ...],
     "tokenizer": {"policy": "train" | "pin", "release": "2026-q3", "sha256": null | "<tokenizer.json sha256>"},
     "base_release": null | {"name": "2026-q2", "model": "<uri of its pretrain hf export>",
                             "tokenizer_sha256": "..."},
     "config": {... stages.release as used ...}, "config_sha256": "...",
     "counts": {"files": n, "file_level": n, "repo_level": n, "repositories": n, "commits": n, "scores": n}}

``snapshots[].attempt`` is the committed attempt of the input stage the cut read (the release copies the data,
so later re-runs of a snapshot never change a release). ``scorer`` is what that snapshot's quality filter recorded
(None when the input stage is not a quality filter); ``crawl_attempt`` is the crawl whose ``files`` gave the
repositories' newest state (None without one: the curated files stand in), ``commits_attempt`` the crawl whose
``commits`` became commit samples. ``tokenizer.release`` names the release whose ``tokenizer``
stage holds the files: the release itself when trained, the pinned release otherwise; ``sha256`` is known at cut
time only when pinned (a trained tokenizer records its own in its stage stats).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from lake.schemas import COMMITS, FILES
from lake.stage import Lake, Partition, StageNotCommitted

FORMAT = "seedcoder-release/1"
STAGE = "release"
MANIFEST = "manifest.json"
TokenizerPolicy = Literal["train", "pin"]

# One curated file of a release: the FILES record, the snapshot it was curated in, and which documents use it.
# ``file_level``: a file-level document (every distinct content of the union, once); ``repo_level``: part of its
# repository's newest version (each path at the repository's newest crawled state), for repository documents.
RELEASE_FILES = pa.schema(list(FILES) + [
    pa.field("snapshot", pa.string(), nullable=False),
    pa.field("file_level", pa.bool_(), nullable=False),
    pa.field("repo_level", pa.bool_(), nullable=False),
])
RELEASE_COMMITS = pa.schema(list(COMMITS) + [pa.field("snapshot", pa.string(), nullable=False)])
RELEASE_SCORES = pa.schema([pa.field("id", pa.string(), nullable=False), pa.field("score", pa.float32()),
                            pa.field("snapshot", pa.string(), nullable=False)])


class ReleaseExists(ValueError):
    """A release of that name is already committed: releases are immutable."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScorerUse(_Record):
    version: str | None
    threshold: float | None
    threshold_mode: str | None


class SnapshotEntry(_Record):
    snapshot: str
    stage: str
    attempt: str
    committed_at: str
    files: int
    scorer: ScorerUse | None = None
    crawl_attempt: str | None = None
    commits_attempt: str | None = None


class TokenizerRef(_Record):
    policy: TokenizerPolicy
    release: str
    sha256: str | None = None


class BaseRelease(_Record):
    name: str
    model: str | None
    tokenizer_sha256: str | None


class Manifest(_Record):
    format: Literal["seedcoder-release/1"] = FORMAT
    name: str
    created_at: str
    input_stage: str
    snapshots: list[SnapshotEntry]
    tokenizer: TokenizerRef
    base_release: BaseRelease | None = None
    config: dict[str, Any]
    config_sha256: str
    counts: dict[str, int] = {}

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def config_sha256(config: dict[str, Any]) -> str:
    """Hash of a configuration as JSON with sorted keys.

    >>> config_sha256({"b": 1, "a": [2]}) == config_sha256({"a": [2], "b": 1})
    True
    """
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def partition(name: str) -> Partition:
    return Partition.release(name)


def arm_release(base: str, arm: str, seed: int) -> str:
    """The release an ablation arm is cut into (validated as a release name).

    >>> arm_release("demo", "no_quality_filter", 2)
    'demo.no_quality_filter.s2'
    """
    return Partition.release(f"{base}.{arm}.s{seed}").name


def parse_arm_release(base: str, name: str) -> tuple[str, str] | None:
    """(arm, seed) of an arm release of ``base``, or None when ``name`` is not one.

    >>> parse_arm_release("demo", "demo.no_quality_filter.s2"), parse_arm_release("demo", "demo2")
    (('no_quality_filter', '2'), None)
    """
    arm, sep, seed = name.removeprefix(f"{base}.").rpartition(".s") if name.startswith(f"{base}.") else ("", "", "")
    return (arm, seed) if sep and arm and seed.isdigit() else None


def refuse_existing(lake: Lake, name: str) -> None:
    """Raise :class:`ReleaseExists` when ``name`` is committed (a killed, uncommitted cut may be redone)."""
    info = lake.commit_info(partition(name), STAGE)
    if info is not None:
        raise ReleaseExists(f"release {name!r} already exists (committed {info.committed_at}, "
                            f"{lake.storage.uri(info.prefix)}): releases are immutable; cut a new one under "
                            f"another name")


def committed(lake: Lake) -> list[str]:
    """Names of the committed releases."""
    return [n for n in lake.releases() if lake.commit_info(partition(n), STAGE) is not None]


def read_manifest(lake: Lake, name: str) -> Manifest:
    info = lake.require(partition(name), STAGE)
    return Manifest.model_validate_json(lake.storage.read_bytes(f"{info.prefix}/{MANIFEST}"))


def manifest_uri(lake: Lake, name: str) -> str:
    return lake.storage.uri(f"{lake.require(partition(name), STAGE).prefix}/{MANIFEST}")


def model_dir(lake: Lake, name: str, *, stage: str = "pretrain", cache_dir: str | Path | None = None) -> Path:
    """A local directory with the Hugging Face export of release ``name``'s model (the lake's own files locally,
    a downloaded copy from an S3 lake)."""
    info = lake.commit_info(partition(name), stage)
    if info is None:
        raise StageNotCommitted(f"release {name!r} has no committed {stage} (its model): run the pretrain DAG "
                                f"with release={name} first")
    prefix = f"{info.prefix}/hf"
    local = lake.storage.local_path(prefix)
    if local is not None:
        if not (local / "config.json").exists():
            raise FileNotFoundError(f"release {name!r}: {local} holds no exported model (config.json)")
        return local
    target = Path(cache_dir or Path.home() / ".cache" / "seedcoder" / "models") / prefix
    for key in lake.storage.list(prefix):
        dest = target / key[len(prefix) + 1:]
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(lake.storage.read_bytes(key))
    return target


def model_uri(lake: Lake, name: str, stage: str = "pretrain") -> str | None:
    info = lake.commit_info(partition(name), stage)
    return lake.storage.uri(f"{info.prefix}/hf") if info else None


RELEASE_REF = "release:"


def resolve_model(lake: Lake, ref: str) -> tuple[Path | str, str]:
    """A model reference as config gives it: ``release:<name>`` (that release's pretrained model) or a path/name.

    Returns the local directory (or the reference unchanged) and a provenance string.
    """
    if ref.startswith(RELEASE_REF):
        name = ref.removeprefix(RELEASE_REF)
        return model_dir(lake, name), f"{ref} ({model_uri(lake, name)})"
    return ref, ref
