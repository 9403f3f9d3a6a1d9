"""A read-only, cached view of every commit in a lake: what the UI shows, without reading data files.

Every kind of partition is covered (``lake.stage.PARTITION_LAYOUT``): snapshots (the data stages), releases (the
cut, tokenizer, dataset build and pretraining) and scorer versions (``models/scorer/{version}``).

The catalog reads only commit pointers (``_SUCCESS``) and the small files a stage writes beside its
``_stats.json``. Two facts make caching safe:

- an attempt directory never changes once committed (a re-run writes a new attempt and moves the pointer),
  so anything read from inside an attempt is cached for as long as the process lives, keyed by the attempt;
- only pointers move, and each pointer is revalidated at most once per ``ttl_s`` with a conditional read
  (local lake: one ``stat``; S3: ``If-None-Match`` on its ETag, a bodiless 304 when unchanged), so a new commit
  shows within ``ttl_s`` and an unchanged lake costs no pointer body at all.

Pointer checks of many stages run concurrently (``workers`` threads): on S3 each check is a round trip.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lake.stage import PARTITION_LAYOUT, SNAPSHOT_RE, STAGE_RE, STATS, SUCCESS, Lake, check_snapshot


@dataclass(frozen=True)
class CommittedStage:
    """One committed stage of one partition (a snapshot, a release or a scorer version), as its pointer names it."""

    snapshot: str  # the partition's name: a snapshot id, a release name or a scorer version
    stage: str
    attempt: str
    committed_at: str
    stats: dict[str, Any]
    params: dict[str, Any]
    files: dict[str, tuple[str, ...]]  # dataset name -> its committed files (lake keys)
    kind: str = "snapshot"  # the partition kind (lake.stage.PARTITION_LAYOUT)

    @property
    def datasets(self) -> dict[str, int]:
        """Dataset name -> number of committed files."""
        return {name: len(keys) for name, keys in self.files.items()}

    @property
    def prefix(self) -> str:
        return f"{PARTITION_LAYOUT[self.kind].format(self.snapshot)}/{self.stage}/attempt={self.attempt}"

    @property
    def stats_key(self) -> str:
        return f"{self.prefix}/{STATS}"


@dataclass
class _Cached:
    version: object
    value: Any
    checked: float


def parse_pointer(raw: bytes, snapshot: str, stage: str, kind: str = "snapshot") -> CommittedStage:
    """A ``_SUCCESS`` pointer's JSON as a :class:`CommittedStage` (file lists reduced to counts).

    >>> p = parse_pointer(b'{"attempt": "a1", "committed_at": "2026-11-01T00:00:00+00:00", "stats": {"records_in": 3},'
    ...                   b' "datasets": {"files": ["x/part-0.parquet", "x/part-1.parquet"]}}', "2026-10", "crawl")
    >>> p.attempt, p.datasets, p.stats["records_in"], p.prefix
    ('a1', {'files': 2}, 3, 'snapshot=2026-10/crawl/attempt=a1')
    >>> parse_pointer(b'{"attempt": "a2"}', "v2", "train_scorer", "scorer").prefix
    'models/scorer/v2/train_scorer/attempt=a2'
    """
    try:
        doc = json.loads(raw)
        return CommittedStage(snapshot=snapshot, stage=stage, attempt=doc["attempt"],
                              committed_at=doc.get("committed_at", ""), stats=doc.get("stats") or {},
                              params=doc.get("params") or {},
                              files={k: tuple(v) for k, v in sorted((doc.get("datasets") or {}).items())},
                              kind=kind)
    except (ValueError, KeyError, TypeError) as err:
        where = PARTITION_LAYOUT[kind].format(snapshot)
        raise ValueError(f"unreadable commit pointer {where}/{stage}/{SUCCESS}: {err}") from None


class LakeCatalog:
    """Partitions (snapshots, releases, scorer versions), their committed stages and their small side files,
    cached with revalidation."""

    def __init__(self, lake: Lake, *, ttl_s: float = 5.0, workers: int = 16,
                 clock: Callable[[], float] = time.monotonic):
        self.lake = lake
        self.ttl_s = ttl_s
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="lake-catalog")
        self._lock = threading.Lock()
        self._listings: dict[str, _Cached] = {}
        self._pointers: dict[str, _Cached] = {}
        self._attempt_files: dict[str, bytes | None] = {}
        self._derived: dict[str, Any] = {}
        self.reads = 0  # pointer bodies read (a changed or new pointer); tests and the benchmark watch it

    def _fresh(self, cache: dict[str, _Cached], key: str) -> _Cached | None:
        with self._lock:
            hit = cache.get(key)
        return hit if hit is not None and self.clock() - hit.checked < self.ttl_s else None

    def _map(self, fn: Callable, items: list, cache: dict[str, _Cached], key: Callable[[Any], str]) -> list:
        """``[fn(item) ...]``, answering fresh cache entries in this thread and the rest concurrently."""
        out: list = [None] * len(items)
        misses = []
        for i, item in enumerate(items):
            hit = self._fresh(cache, key(item))
            if hit is None:
                misses.append(i)
            else:
                out[i] = hit.value
        for i, value in zip(misses, self._pool.map(lambda i: fn(items[i]), misses), strict=True):
            out[i] = value
        return out

    # -- listings ---------------------------------------------------------------------------------------------
    def _children(self, prefix: str) -> list[str]:
        now = self.clock()
        hit = self._fresh(self._listings, prefix)
        if hit is not None:
            return hit.value
        names = self.lake.storage.children(prefix)
        with self._lock:
            self._listings[prefix] = _Cached(None, names, now)
        return names

    def names(self, kind: str = "snapshot") -> list[str]:
        """Every partition of ``kind`` in the lake, newest (greatest) name first."""
        parent, _, child = PARTITION_LAYOUT[kind].rpartition("/")
        head = child.removesuffix("{}")
        names = [n[len(head):] for n in self._children(parent) if n.startswith(head)]
        return sorted((n for n in names if SNAPSHOT_RE.match(n)), reverse=True)

    def snapshots(self) -> list[str]:
        """Every snapshot partition of the lake, newest id first."""
        return self.names("snapshot")

    # -- pointers ---------------------------------------------------------------------------------------------
    def _pointer(self, kind: str, snapshot: str, stage: str) -> CommittedStage | None:
        key = f"{PARTITION_LAYOUT[kind].format(snapshot)}/{stage}/{SUCCESS}"
        now = self.clock()
        with self._lock:
            hit = self._pointers.get(key)
        if hit is not None and now - hit.checked < self.ttl_s:
            return hit.value
        try:
            data, version = self.lake.storage.read_if_changed(key, hit.version if hit else None)
        except FileNotFoundError:
            data, version = None, None
            value = None
        else:
            if data is None and hit is not None:
                value = hit.value
            else:
                self.reads += 1
                value = parse_pointer(data, snapshot, stage, kind)
        with self._lock:
            self._pointers[key] = _Cached(version, value, now)
        return value

    def stages(self, snapshot: str, kind: str = "snapshot") -> dict[str, CommittedStage]:
        """The committed stages of one partition (a snapshot by default), by stage name."""
        check_snapshot(snapshot)
        return self.many([snapshot], kind)[snapshot]

    def many(self, snapshots: Iterable[str], kind: str = "snapshot") -> dict[str, dict[str, CommittedStage]]:
        """:meth:`stages` of several partitions of one kind, their listings and pointer checks all concurrent."""
        snapshots, layout = list(snapshots), PARTITION_LAYOUT[kind]
        for snapshot in snapshots:
            check_snapshot(snapshot)
        listed = self._map(lambda s: self._children(layout.format(s)), snapshots, self._listings,
                           lambda s: layout.format(s))
        pairs = [(kind, s, n) for s, names in zip(snapshots, listed, strict=True) for n in names
                 if STAGE_RE.match(n)]
        out: dict[str, dict[str, CommittedStage]] = {s: {} for s in snapshots}
        commits = self._map(lambda p: self._pointer(*p), pairs, self._pointers,
                            lambda p: f"{layout.format(p[1])}/{p[2]}/{SUCCESS}")
        for (_k, s, _n), commit in zip(pairs, commits, strict=True):
            if commit is not None:
                out[s][commit.stage] = commit
        return out

    # -- files inside a committed attempt (immutable) -------------------------------------------------------
    def attempt_file(self, commit: CommittedStage, name: str) -> bytes | None:
        """A small file of the committed attempt (``_stats.json``, ``score_histogram.json``, a committed metrics
        file such as the pretraining step log); None if absent. ``name`` is relative to the attempt."""
        if name.startswith(("/", ".")) or ".." in name.split("/"):
            raise ValueError(f"not a file of an attempt: {name!r}")
        key = f"{commit.prefix}/{name}"
        with self._lock:
            if key in self._attempt_files:
                return self._attempt_files[key]
        try:
            data = self.lake.storage.read_bytes(key)
        except FileNotFoundError:
            data = None
        with self._lock:
            self._attempt_files[key] = data
        return data

    def derived(self, commit: CommittedStage, name: str, compute: Callable[[], Any]) -> Any:
        """A value computed from a committed attempt's files, computed once per attempt (attempts never change)."""
        key = f"{commit.prefix}#{name}"
        with self._lock:
            if key in self._derived:
                return self._derived[key]
        value = compute()
        with self._lock:
            self._derived[key] = value
        return value

    def attempt_json(self, commit: CommittedStage, name: str) -> Any | None:
        data = self.attempt_file(commit, name)
        return None if data is None else json.loads(data)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
