"""Duplicate clusters in a dedup stage's stats: the size distribution and the largest clusters, with examples.

A cluster is one kept record and every record removed in its favour, at one level (``file``: file ids,
``repo``: repositories). Both dedup stages summarise their committed ``duplicates`` this way into
``metrics["clusters"]`` so the UI shows the distribution without reading a data file. Spark computes it with a
few aggregations (only counts and the ``top`` largest clusters reach the driver); the single-process engine
uses :func:`summarise` on plain rows. Both give the same dict (tested).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable

TOP_CLUSTERS = 10


def size_bucket(size: int) -> str:
    """The histogram bucket of a cluster size: exact up to 4, then powers of two.

    >>> [size_bucket(n) for n in (2, 3, 4, 5, 8, 9, 100)]
    ['2', '3', '4', '5-8', '5-8', '9-16', '65-128']
    """
    if size <= 4:
        return str(size)
    top = 2 ** math.ceil(math.log2(size))
    return f"{top // 2 + 1}-{top}"


def bucket_sizes(size_counts: dict[int, int]) -> dict[str, int]:
    """``{cluster size: clusters}`` -> ``{bucket: clusters}`` in size order.

    >>> bucket_sizes({2: 5, 3: 1, 6: 2, 7: 1})
    {'2': 5, '3': 1, '5-8': 3}
    """
    out: dict[str, int] = {}
    for size in sorted(size_counts):
        bucket = size_bucket(size)
        out[bucket] = out.get(bucket, 0) + size_counts[size]
    return out


def _level_summary(size_counts: dict[int, int], largest: list[dict]) -> dict:
    return {"clusters": sum(size_counts.values()),
            "removed": sum((size - 1) * n for size, n in size_counts.items()),
            "size_buckets": bucket_sizes(size_counts), "largest": largest}


def summarise(pairs: Iterable[tuple[str, str, str]], labels: dict[str, str], top: int = TOP_CLUSTERS) -> dict:
    """Clusters of ``(level, removed, kept)`` rows; ``labels`` names file ids (``repo/path``), repos name themselves.

    Largest first; ties by the kept record's key. Each carries two example paths: the kept record and the
    smallest-keyed removed one.

    >>> rows = [("file", "b", "a"), ("file", "c", "a"), ("file", "e", "d"), ("repo", "fork/x", "acme/x")]
    >>> s = summarise(rows, {"a": "acme/x/a.py", "b": "fork/x/a.py", "c": "acme/y/a.py", "d": "o/d.c", "e": "o/e.c"})
    >>> s["file"]["size_buckets"], s["file"]["removed"], s["file"]["largest"][0]
    ({'2': 1, '3': 1}, 3, {'size': 3, 'kept': 'acme/x/a.py', 'example': 'fork/x/a.py'})
    >>> s["repo"]["largest"]
    [{'size': 2, 'kept': 'acme/x', 'example': 'fork/x'}]
    """
    members: dict[tuple[str, str], list[str]] = defaultdict(list)
    for level, removed, kept in pairs:
        members[(level, kept)].append(removed)
    out = {}
    for level in sorted({lv for lv, _ in members}):
        clusters = [(kept, sorted(set(rs))) for (lv, kept), rs in members.items() if lv == level]
        sizes = Counter(len(rs) + 1 for _, rs in clusters)
        clusters.sort(key=lambda c: (-len(c[1]), c[0]))
        largest = [{"size": len(rs) + 1, "kept": labels.get(kept, kept), "example": labels.get(rs[0], rs[0])}
                   for kept, rs in clusters[:top]]
        out[level] = _level_summary(dict(sizes), largest)
    return out


def summarise_spark(pairs, files, top: int = TOP_CLUSTERS) -> dict:
    """:func:`summarise` on Spark: ``pairs`` (level, removed, kept), ``files`` (id, repo, path) for the labels."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    clusters = pairs.groupBy("level", "kept").agg(F.countDistinct("removed").alias("n"),
                                                  F.min("removed").alias("example"))
    # Persisted: the size distribution and the top clusters both read the aggregation.
    clusters = clusters.persist()
    try:
        sizes: dict[str, dict[int, int]] = defaultdict(dict)
        for row in clusters.groupBy("level", "n").count().collect():
            sizes[row["level"]][int(row["n"]) + 1] = int(row["count"])
        rank = Window.partitionBy("level").orderBy(F.desc("n"), F.asc("kept"))
        tops = (clusters.withColumn("rank", F.row_number().over(rank)).filter(F.col("rank") <= top)
                .orderBy("level", "rank").collect())
    finally:
        clusters.unpersist()
    wanted = sorted({r["kept"] for r in tops} | {r["example"] for r in tops})
    labels = {r["id"]: f"{r['repo']}/{r['path']}"
              for r in files.filter(F.col("id").isin(wanted)).select("id", "repo", "path").collect()} if wanted else {}
    out = {}
    for level in sorted(sizes):
        largest = [{"size": int(r["n"]) + 1, "kept": labels.get(r["kept"], r["kept"]),
                    "example": labels.get(r["example"], r["example"])} for r in tops if r["level"] == level]
        out[level] = _level_summary(sizes[level], largest)
    return out
