"""Which copy survives when duplicates collide (exact and near dedup alike).

The Stack v2 rule the Seed-Coder report follows: the copy from the repository with the most stars, then the most
forks, then a permissive licence, then the earliest repository. Repository, path and id close the order so it is
total: the same input keeps the same copy on any number of executors.
"""

from __future__ import annotations

from datetime import UTC, datetime

from lake.schemas import PERMISSIVE_LICENSES

_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def keep_key(record: dict) -> tuple:
    """Sort key for single-process code: the smallest key is kept.

    >>> a = {"stars": 5, "forks": 1, "license": "MIT", "repo_created_at": None, "repo": "a", "path": "x", "id": "1"}
    >>> b = dict(a, stars=9, license="GPL-3.0", repo="b")
    >>> min([a, b], key=keep_key)["repo"]
    'b'
    """
    created = record.get("repo_created_at") or _FAR_FUTURE
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return (
        -int(record.get("stars") or 0),
        -int(record.get("forks") or 0),
        0 if record.get("license") in PERMISSIVE_LICENSES else 1,
        created,
        record.get("repo") or "",
        record.get("path") or "",
        record.get("id") or "",
    )


def keep_order(prefix: str | None = None) -> list:
    """The same order as Spark sort expressions (``Window.orderBy(*keep_order())``)."""
    from pyspark.sql import functions as F

    def col(name: str):
        return F.col(f"{prefix}.{name}" if prefix else name)

    permissive = F.when(col("license").isin(sorted(PERMISSIVE_LICENSES)), F.lit(0)).otherwise(F.lit(1))
    return [
        F.coalesce(col("stars"), F.lit(0)).desc(),
        F.coalesce(col("forks"), F.lit(0)).desc(),
        permissive.asc(),
        col("repo_created_at").asc_nulls_last(),
        col("repo").asc(),
        col("path").asc(),
        col("id").asc(),
    ]
