"""The memory one Spark task may use, and every batch, block and partition size of near dedup derived from it.

Near dedup moves three kinds of rows whose size follows the files': the content (up to the crawl's 1 MB per file),
the shingle sets (8 bytes per distinct shingle: up to 8x the content for punctuation-dense files) and the
signatures (4 bytes per permutation). Record counts do not bound bytes: 512 files of 40 KB are 20 MB, of 1 MB half a
gigabyte. So every unit of work is sized in bytes from the executor's memory:

- an Arrow batch to or from a Python worker holds at most ``batch_bytes`` (our own splitting coming out), and a
  Parquet reader batch or an in-memory cache batch at most that many bytes of its largest rows; going in (Spark's
  ``arrow.maxBytesPerBatch``) at most ``input_batch_bytes``, smaller, so the JVM fills the next batch while
  Python works on this one;
- the bucket pass holds one bucket partition, packed, at most ``partition_bytes``;
- a persisted partition (a cache block is read back whole) or a row group being written holds at most
  ``partition_bytes``;
- the union-find that contracts the verified edges of one partition holds at most ``union_find_edges`` edges.

A task gets ``(heap - reserved) x spark.memory.fraction / concurrent tasks`` of the executor's heap (Spark's unified
memory model): 1.1 GB for the local profile's 4 GB driver with 2 task slots.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

RESERVED_BYTES = 300 * 2**20  # Spark's reserved system memory (spark.testing.reservedMemory overrides it)
UNION_FIND_BYTES_PER_EDGE = 600  # two id strings + dict entries + the Arrow rows, measured in the Python worker
MIN_BATCH_BYTES = 1 * 2**20
# Arrow batches into a Python worker: the JVM converts batch n + 1 while Python signs batch n. At task / 16 (71 MB on
# the local profile) a signing task had three batches, and each side mostly waited for the other: 8 MB cut the
# signing stage of the 1x held-out corpus from 4.6-4.7 s to 4.1-4.3 s (benchmarks/RESULTS-near-dedup.md).
INPUT_BATCH_BYTES = 8 * 2**20
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)b?\s*$", re.IGNORECASE)


def parse_size(value: str, default_unit: str = "m") -> int:
    """Bytes of a JVM memory setting (``4g``, ``512m``; a bare number is in ``default_unit``, MiB for Spark's).

    >>> parse_size("4g"), parse_size("512M"), parse_size("1024"), parse_size("64k", "b")
    (4294967296, 536870912, 1073741824, 65536)
    """
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"not a memory size: {value!r} (expected e.g. 512m or 4g)")
    unit = (match.group(2) or default_unit).lower()
    return int(match.group(1)) * {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[unit]


def task_slots(master: str, executor_cores: str | None, task_cpus: str | None) -> int:
    """Tasks running at once in one executor (JVM): local[N] threads, else executor cores / task cpus.

    >>> task_slots("local[2]", None, None), task_slots("local[*]", None, None) >= 1, task_slots("k8s://x", "4", "2")
    (2, True, 2)
    """
    local = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\d+)?\])?", master or "")
    if local:
        threads = local.group(1)
        return os.cpu_count() or 1 if threads == "*" else int(threads or 1)
    return max(1, int(executor_cores or 1) // int(task_cpus or 1))


@dataclass(frozen=True)
class MemoryBudget:
    """``task_bytes``: what one task may hold. Everything else is a fixed share of it (see the module doc)."""

    task_bytes: int
    MIN_TASK_BYTES = 8 * 2**20

    def __post_init__(self):
        if self.task_bytes < self.MIN_TASK_BYTES:
            raise ValueError(f"a task memory budget of {self.task_bytes} bytes is below the minimum of "
                             f"{self.MIN_TASK_BYTES} (give the executor more memory)")

    @classmethod
    def from_conf(cls, get) -> MemoryBudget:
        """From a Spark conf getter (``spark.conf.get``): the executor's heap (the driver's on a local master)."""
        master = get("spark.master", "local[*]")
        heap_key = "spark.driver.memory" if master.startswith("local") else "spark.executor.memory"
        heap = parse_size(get(heap_key, "1g"))
        reserved = int(get("spark.testing.reservedMemory", str(RESERVED_BYTES)))
        fraction = float(get("spark.memory.fraction", "0.6"))
        slots = task_slots(master, get("spark.executor.cores", None), get("spark.task.cpus", None))
        return cls(int((heap - reserved) * fraction / slots))

    @property
    def batch_bytes(self) -> int:
        """One Arrow batch, Parquet reader batch or in-memory cache batch."""
        return max(MIN_BATCH_BYTES, self.task_bytes // 16)

    @property
    def input_batch_bytes(self) -> int:
        """One Arrow batch into a Python worker (a larger row goes alone)."""
        return min(self.batch_bytes, INPUT_BATCH_BYTES)

    @property
    def partition_bytes(self) -> int:
        """One persisted partition (a cache block), or one Parquet row group a writer buffers."""
        return self.task_bytes // 2

    @property
    def union_find_edges(self) -> int:
        """Verified edges contracted by union-find in one Python worker."""
        return max(1000, self.task_bytes // UNION_FIND_BYTES_PER_EDGE)

    def rows(self, row_bytes: int, most: int = 1 << 20) -> int:
        """Rows of ``row_bytes`` each that fit one batch (at least one, at most ``most``).

        >>> MemoryBudget(2**30).rows(2**20), MemoryBudget(2**30).rows(10**9), MemoryBudget(2**30).rows(1, most=7)
        (64, 1, 7)
        """
        return max(1, min(most, self.batch_bytes // max(1, row_bytes)))

    def partitions(self, total_bytes: int, at_least: int = 1) -> int:
        """Partitions for ``total_bytes`` of persisted rows.

        >>> MemoryBudget(2**30).partitions(10 * 2**30, at_least=2), MemoryBudget(2**30).partitions(0, at_least=2)
        (20, 2)
        """
        return max(at_least, math.ceil(total_bytes / self.partition_bytes))
