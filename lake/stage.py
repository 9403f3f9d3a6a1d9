"""The stage contract: attempt locations, `_stats.json`, and the atomic `_SUCCESS` commit.

Layout of one stage's output in one partition::

    {root}/{partition}/{stage}/_SUCCESS                         commit pointer (JSON), written last, atomically
    {root}/{partition}/{stage}/attempt={a}/{dataset}/part-*.parquet
    {root}/{partition}/{stage}/attempt={a}/_stats.json
    {root}/{partition}/{stage}/attempt={a}/_shards/{name}.done   resume markers of a sharded stage

A partition is the unit a stage works on (:class:`Partition`): ``snapshot={id}`` for the data stages (a monthly
crawl and what is derived from it), ``release={name}`` for the model stages (a named, immutable training corpus
cut from many snapshots, see :mod:`lake.release`), and ``models/scorer/{version}`` for a versioned quality scorer.
Everywhere a partition is expected, a plain string means a snapshot id.

A stage writes only under a fresh (or resumed, uncommitted) attempt. Committing writes ``_SUCCESS`` in a
single atomic object write that names the attempt; readers resolve data through it, so a stage killed at
any point leaves the previously committed partition intact and visible, and a re-run replaces exactly
that partition. This is the same pointer-swap idea as table formats (Delta, Iceberg) use, and it needs
no rename, which S3 does not have. Superseded and abandoned attempts are deleted after a commit.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from lake import timing
from lake.storage import Storage, open_storage

log = logging.getLogger(__name__)

SNAPSHOT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
STAGE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SUCCESS = "_SUCCESS"
STATS = "_stats.json"
# The metrics key under which a stage that outputs FILES records counts them per language (the per-language funnel).
OUT_BY_LANGUAGE = "records_out_by_language"
ROW_GROUP_BYTES = 32 * 2**20  # a Parquet row group of at most ~32 MB of Arrow data (write_table)


def check_snapshot(snapshot: str) -> str:
    if not isinstance(snapshot, str) or not SNAPSHOT_RE.match(snapshot):
        raise ValueError(f"invalid snapshot id {snapshot!r}: use letters, digits, '.', '_' or '-' (e.g. 2026-10)")
    return snapshot


PartitionKind = Literal["snapshot", "release", "scorer"]
# Where each kind of partition lives under the lake root.
PARTITION_LAYOUT: dict[str, str] = {"snapshot": "snapshot={}", "release": "release={}", "scorer": "models/scorer/{}"}


@dataclass(frozen=True, order=True)
class Partition:
    """What one run of a stage reads and replaces: a snapshot, a release, or a scorer version.

    >>> Partition.release("2026-q3").prefix, str(Partition.scorer("v2")), Partition.snapshot("2026-10").prefix
    ('release=2026-q3', "scorer 'v2'", 'snapshot=2026-10')
    """

    kind: PartitionKind
    name: str

    def __post_init__(self) -> None:
        if self.kind not in PARTITION_LAYOUT:
            raise ValueError(f"unknown partition kind {self.kind!r}; expected one of {sorted(PARTITION_LAYOUT)}")
        if not isinstance(self.name, str) or not SNAPSHOT_RE.match(self.name):
            raise ValueError(f"invalid {self.kind} name {self.name!r}: use letters, digits, '.', '_' or '-'")

    @classmethod
    def snapshot(cls, name: str) -> Partition:
        return cls("snapshot", name)

    @classmethod
    def release(cls, name: str) -> Partition:
        return cls("release", name)

    @classmethod
    def scorer(cls, version: str) -> Partition:
        return cls("scorer", version)

    @property
    def prefix(self) -> str:
        return PARTITION_LAYOUT[self.kind].format(self.name)

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r}"


def as_partition(key: str | Partition) -> Partition:
    """A partition from a partition or a snapshot id (the plain-string form every data stage uses)."""
    if isinstance(key, Partition):
        return key
    return Partition.snapshot(check_snapshot(key))


@dataclass
class StageStats:
    """What a stage did: counts in and out, why records were dropped, and how fast."""

    stage: str
    snapshot: str | Partition
    attempt: str = ""
    records_in: int = 0
    records_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    drops: Counter = field(default_factory=Counter)
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    started_at: str = ""
    # Fixed costs of the stage's process (lake/timing.py): process_start plus what code recorded (spark_session,
    # model_load, vllm_engine, ...); wall_seconds runs from the process's start (or a warm driver's request) to
    # the commit, so wall_seconds - sum(fixed_costs) is the stage's work.
    fixed_costs: dict[str, float] = field(default_factory=dict)
    wall_seconds: float | None = None

    def drop(self, reason: str, count: int = 1) -> None:
        self.drops[reason] += count

    def to_dict(self) -> dict[str, Any]:
        partition = as_partition(self.snapshot)
        return {
            "stage": self.stage,
            # "snapshot": id, "release": name or "scorer": version, and the partition's path in the lake
            partition.kind: partition.name,
            "partition": partition.prefix,
            "attempt": self.attempt,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "records_dropped": sum(self.drops.values()),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "drop_reasons": dict(sorted(self.drops.items())),
            "seconds": round(self.seconds, 3),
            "records_per_s": round(self.records_in / self.seconds, 1) if self.seconds > 0 else None,
            "started_at": self.started_at,
            "fixed_costs": dict(self.fixed_costs),
            "wall_seconds": None if self.wall_seconds is None else round(self.wall_seconds, 3),
            "metrics": self.metrics,
        }


@dataclass(frozen=True)
class Commit:
    partition: Partition
    stage: str
    attempt: str
    datasets: dict[str, list[str]]
    stats: dict[str, Any]
    committed_at: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def snapshot(self) -> str:
        """The partition's name (a snapshot id for the data stages)."""
        return self.partition.name

    @property
    def prefix(self) -> str:
        return f"{self.partition.prefix}/{self.stage}/attempt={self.attempt}"


class StageNotCommitted(FileNotFoundError):
    pass


class Lake:
    """The lake: where every stage's committed partitions live."""

    def __init__(self, storage: Storage):
        self.storage = storage

    @classmethod
    def from_config(cls, cfg) -> Lake:
        return cls(open_storage(cfg.lake_root(), endpoint_url=cfg.lake.s3_endpoint_url, region=cfg.lake.s3_region))

    @classmethod
    def at(cls, root: str, **kw) -> Lake:
        return cls(open_storage(root, **kw))

    @property
    def root(self) -> str:
        return self.storage.root

    @staticmethod
    def stage_prefix(snapshot: str | Partition, stage: str) -> str:
        partition = as_partition(snapshot)
        if not STAGE_RE.match(stage):
            raise ValueError(f"invalid stage name {stage!r}")
        return f"{partition.prefix}/{stage}"

    def snapshots(self) -> list[str]:
        return sorted(n.removeprefix("snapshot=") for n in self.storage.children("") if n.startswith("snapshot="))

    def releases(self) -> list[str]:
        """Names of every release partition (committed or not; see lake.release for the committed ones)."""
        return sorted(n.removeprefix("release=") for n in self.storage.children("") if n.startswith("release="))

    def scorer_versions(self) -> list[str]:
        return sorted(self.storage.children("models/scorer"))

    def commit_info(self, snapshot: str | Partition, stage: str) -> Commit | None:
        partition = as_partition(snapshot)
        key = f"{self.stage_prefix(partition, stage)}/{SUCCESS}"
        if not self.storage.exists(key):
            return None
        raw = json.loads(self.storage.read_bytes(key))
        return Commit(
            partition=partition,
            stage=raw["stage"],
            attempt=raw["attempt"],
            datasets=raw["datasets"],
            stats=raw["stats"],
            committed_at=raw["committed_at"],
            params=raw.get("params") or {},
        )

    def require(self, snapshot: str | Partition, stage: str) -> Commit:
        info = self.commit_info(snapshot, stage)
        if info is None:
            partition = as_partition(snapshot)
            flag = {"snapshot": "--snapshot", "release": "--release", "scorer": "--version"}[partition.kind]
            raise StageNotCommitted(
                f"stage {stage!r} has no committed output for {partition} in {self.root} "
                f"(run it first: python -m <module of {stage}> {flag} {partition.name})"
            )
        return info

    def dataset_keys(self, snapshot: str | Partition, stage: str, dataset: str) -> list[str]:
        info = self.require(snapshot, stage)
        if dataset not in info.datasets:
            raise KeyError(f"stage {stage!r} of {as_partition(snapshot)} has no dataset {dataset!r}; "
                           f"it has {sorted(info.datasets)}")
        return list(info.datasets[dataset])

    def dataset_uri(self, snapshot: str | Partition, stage: str, dataset: str, *, for_spark: bool = False) -> str:
        """Directory URI of a committed dataset (what ``spark.read.parquet`` wants)."""
        info = self.require(snapshot, stage)
        return self.storage.uri(f"{info.prefix}/{dataset}", for_spark=for_spark)

    def dataset_file_uris(self, snapshot: str | Partition, stage: str, dataset: str, *, for_spark: bool = False) -> list[str]:
        return [self.storage.uri(k, for_spark=for_spark) for k in self.dataset_keys(snapshot, stage, dataset)]

    def read_table(self, snapshot: str | Partition, stage: str, dataset: str, columns: list[str] | None = None):
        """A committed dataset as one pyarrow Table (small data, tests and GPU stages)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = [pq.read_table(io.BytesIO(self.storage.read_bytes(k)), columns=columns)
                  for k in self.dataset_keys(snapshot, stage, dataset) if k.endswith(".parquet")]
        if not tables:
            raise StageNotCommitted(f"dataset {dataset!r} of stage {stage!r} ({as_partition(snapshot)}) has no "
                                    f"parquet files")
        return pa.concat_tables(tables)

    def iter_batches(self, snapshot: str | Partition, stage: str, dataset: str, columns: list[str] | None = None,
                     batch_size: int = 1024):
        import pyarrow.parquet as pq

        for key in self.dataset_keys(snapshot, stage, dataset):
            if key.endswith(".parquet"):
                yield from pq.ParquetFile(io.BytesIO(self.storage.read_bytes(key))).iter_batches(
                    batch_size=batch_size, columns=columns)

    def stats(self, snapshot: str | Partition, stage: str) -> dict[str, Any]:
        return self.require(snapshot, stage).stats

    def stats_uri(self, snapshot: str | Partition, stage: str) -> str:
        return self.storage.uri(f"{self.require(snapshot, stage).prefix}/{STATS}")

    def committed_stages(self, snapshot: str | Partition) -> list[Commit]:
        out = [self.commit_info(snapshot, stage) for stage in self.storage.children(as_partition(snapshot).prefix)
               if STAGE_RE.match(stage)]
        return sorted((c for c in out if c), key=lambda c: c.committed_at)


ATTEMPT_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"


def _new_attempt_id() -> str:
    return datetime.now(UTC).strftime(ATTEMPT_TIME_FORMAT) + "-" + secrets.token_hex(3)


def attempt_created_at(attempt: str) -> datetime | None:
    """When an attempt id was made (UTC, to the microsecond); None for an id not made by ``_new_attempt_id``."""
    try:
        return datetime.strptime(attempt.split("-")[0], ATTEMPT_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


class StageRun:
    """One attempt of one stage on one partition (a snapshot, a release, a scorer version); commit on clean exit of the ``with`` block.

    ``resume=True`` adopts the newest uncommitted attempt left by a killed run, so a sharded stage can skip
    the shards it already finished (see :meth:`shard_done`). Without it, every run starts a fresh attempt.
    """

    def __init__(self, lake: Lake, snapshot: str | Partition, stage: str, *, resume: bool = False,
                 params: dict | None = None):
        self.lake = lake
        self.storage = lake.storage
        self.partition = as_partition(snapshot)
        # As given: a snapshot id, or a Partition. Every Lake method takes either, so a stage reads its inputs of
        # the same partition with ``lake.<method>(run.snapshot, ...)`` whatever the partition's kind.
        self.snapshot = snapshot if isinstance(snapshot, Partition) else self.partition.name
        self.stage = stage
        self.prefix = Lake.stage_prefix(snapshot, stage)
        self.params = params or {}
        self.attempt = (self._latest_uncommitted() if resume else None) or _new_attempt_id()
        self.resumed = resume and self.storage.exists(f"{self.attempt_prefix}/_shards")
        self.stats = StageStats(stage=stage, snapshot=snapshot, attempt=self.attempt,
                                started_at=datetime.now(UTC).isoformat(timespec="seconds"))
        self._t0 = time.monotonic()
        # Fixed costs paid before the run opened (a Spark session made first) and the process's start-up.
        self._opened_wall = time.time()
        self._costs_before = timing.take()
        self._committed: Commit | None = None

    @property
    def attempt_prefix(self) -> str:
        return f"{self.prefix}/attempt={self.attempt}"

    def _attempts(self) -> list[str]:
        return sorted(n.removeprefix("attempt=") for n in self.storage.children(self.prefix)
                      if n.startswith("attempt="))

    def _latest_uncommitted(self) -> str | None:
        committed = self.lake.commit_info(self.snapshot, self.stage)
        open_attempts = [a for a in self._attempts() if not committed or a != committed.attempt]
        return open_attempts[-1] if open_attempts else None

    # -- writing ---------------------------------------------------------------------------------
    def dataset_key(self, dataset: str) -> str:
        if not STAGE_RE.match(dataset):
            raise ValueError(f"invalid dataset name {dataset!r}")
        return f"{self.attempt_prefix}/{dataset}"

    def dataset_uri(self, dataset: str, *, for_spark: bool = False) -> str:
        """Where a Spark job writes a dataset of this attempt (``df.write.parquet(uri)``)."""
        return self.storage.uri(self.dataset_key(dataset), for_spark=for_spark)

    def local_dir(self, dataset: str):
        """A local directory for a dataset of this attempt (local lake only), for writers that need a path."""
        path = self.storage.local_path(self.dataset_key(dataset))
        if path is None:
            raise RuntimeError("local_dir() needs a filesystem lake; write with write_table()/write_bytes() on S3")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_table(self, dataset: str, table, part: int | str, *, row_group_size: int = 8192) -> str:
        """Write one parquet part deterministically (no timestamps in the file, stable name).

        Row groups hold at most ``row_group_size`` rows and about ROW_GROUP_BYTES of data: a reader holds a whole
        column chunk, and 8192 files of up to 1 MB would be a row group of gigabytes.
        """
        import pyarrow.parquet as pq

        if table.num_rows and table.nbytes > ROW_GROUP_BYTES:
            row_group_size = max(1, min(row_group_size, table.num_rows * ROW_GROUP_BYTES // table.nbytes))
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd", row_group_size=row_group_size)
        name = f"part-{part:05d}.parquet" if isinstance(part, int) else f"part-{part}.parquet"
        key = f"{self.dataset_key(dataset)}/{name}"
        self.storage.write_bytes(key, buf.getvalue())
        return key

    def write_bytes(self, relative: str, data: bytes) -> str:
        key = f"{self.attempt_prefix}/{relative}"
        self.storage.write_bytes(key, data)
        return key

    # -- resume ----------------------------------------------------------------------------------
    def shard_done(self, shard: str) -> bool:
        return self.storage.exists(f"{self.attempt_prefix}/_shards/{shard}.done")

    def mark_shard_done(self, shard: str, info: dict | None = None) -> None:
        self.storage.write_bytes(f"{self.attempt_prefix}/_shards/{shard}.done",
                                 json.dumps(info or {}, sort_keys=True).encode())

    def shard_info(self, shard: str) -> dict:
        return json.loads(self.storage.read_bytes(f"{self.attempt_prefix}/_shards/{shard}.done"))

    # -- commit ----------------------------------------------------------------------------------
    def _fixed_costs(self) -> None:
        """Fill ``fixed_costs`` and ``wall_seconds`` from what this process recorded (lake/timing.py)."""
        costs = dict(self._costs_before)
        for kind, seconds in timing.take().items():
            costs[kind] = round(costs.get(kind, 0.0) + seconds, 3)
        startup = timing.startup_seconds(self._opened_wall, sum(self._costs_before.values()))
        if startup is not None:
            costs = {"process_start": startup, **costs}
            self.stats.wall_seconds = time.time() - timing.epoch()
        self.stats.fixed_costs = costs
        timing.mark_start()

    def commit(self) -> Commit:
        self.stats.seconds = time.monotonic() - self._t0
        self._fixed_costs()
        datasets: dict[str, list[str]] = {}
        for key in self.storage.list(self.attempt_prefix):
            rel = key[len(self.attempt_prefix) + 1 :]
            if "/" not in rel or rel.startswith("_"):
                continue
            name, file = rel.split("/", 1)
            if file.split("/")[-1].startswith(("_", ".")):
                continue
            datasets.setdefault(name, []).append(key)
        stats = self.stats.to_dict()
        self.storage.write_bytes(f"{self.attempt_prefix}/{STATS}",
                                 (json.dumps(stats, indent=2, sort_keys=True) + "\n").encode())
        now = datetime.now(UTC).isoformat(timespec="seconds")
        pointer = {self.partition.kind: self.partition.name, "partition": self.partition.prefix,
                   "stage": self.stage, "attempt": self.attempt,
                   "datasets": {k: sorted(v) for k, v in sorted(datasets.items())},
                   "stats": stats, "params": self.params, "committed_at": now}
        self.storage.write_bytes(f"{self.prefix}/{SUCCESS}", (json.dumps(pointer, indent=2) + "\n").encode())
        self._committed = self.lake.require(self.snapshot, self.stage)
        for attempt in self._attempts():
            if attempt != self.attempt:
                self.storage.delete_prefix(f"{self.prefix}/attempt={attempt}")
        log.info("committed %s/%s attempt %s: %d in, %d out, drops %s, %.1fs",
                 self.partition.prefix, self.stage, self.attempt, self.stats.records_in, self.stats.records_out,
                 dict(self.stats.drops), self.stats.seconds)
        return self._committed

    def __enter__(self) -> StageRun:
        log.info("%s %s/%s attempt %s", "resuming" if self.resumed else "starting",
                 self.partition.prefix, self.stage, self.attempt)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            log.error("stage %s/%s failed; attempt %s left uncommitted (the committed partition is unchanged)",
                      self.partition.prefix, self.stage, self.attempt)

