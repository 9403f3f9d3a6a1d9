"""Exact dedup's transform on inline frames: the keep rule, repository level, determinism."""

from datetime import UTC, datetime

import pytest

from lake.schemas import FILES, file_id, sha256_hex, to_spark_schema
from spark_jobs.exact_dedup import dedup

pytestmark = pytest.mark.spark


def rec(repo, path, content, stars=0, forks=0, license=None, created=None):
    data = content.encode()
    return (file_id(repo, "c", path), repo, "c", path, "Python", license, stars, forks, created, content,
            sha256_hex(data), len(data), content.count("\n"))


def frame(spark, rows, partitions=3):
    return spark.createDataFrame(rows, to_spark_schema(FILES)).repartition(partitions)


def kept_paths(kept):
    return sorted((r["repo"], r["path"]) for r in kept.select("repo", "path").collect())


def test_keep_rule_order(spark):
    old, new = datetime(2019, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC)
    rows = [
        rec("stars/low", "a.py", "A\n", stars=1, forks=50), rec("stars/high", "a.py", "A\n", stars=9),
        rec("forks/low", "b.py", "B\n", forks=1), rec("forks/high", "b.py", "B\n", forks=3),
        rec("lic/gpl", "c.py", "C\n", license="GPL-3.0"), rec("lic/mit", "c.py", "C\n", license="MIT"),
        rec("date/new", "d.py", "D\n", created=new), rec("date/old", "d.py", "D\n", created=old),
        rec("tie/b", "e.py", "E\n"), rec("tie/a", "e.py", "E\n"),
        rec("unique/x", "u.py", "U\n"),
    ]
    kept, dups = dedup(frame(spark, rows), repository_level=False)
    assert kept_paths(kept) == [("date/old", "d.py"), ("forks/high", "b.py"), ("lic/mit", "c.py"),
                                ("stars/high", "a.py"), ("tie/a", "e.py"), ("unique/x", "u.py")]
    dup_rows = {r["repo"]: r for r in dups.collect()}
    assert dup_rows["stars/low"]["kept_repo"] == "stars/high" and dup_rows["stars/low"]["level"] == "file"
    assert dup_rows["stars/low"]["kept_id"] == file_id("stars/high", "c", "a.py")


def test_repository_level_removes_copies_whole(spark):
    files = [("x.py", "X\n"), ("y.py", "Y\n")]
    rows = [rec("orig/repo", p, c, stars=5) for p, c in files]
    rows += [rec("fork/repo", "src/" + p, c, stars=1) for p, c in files]  # same contents, moved
    rows += [rec("partial/repo", "x.py", "X\n", stars=100), rec("partial/repo", "z.py", "Z\n", stars=100)]
    kept, dups = dedup(frame(spark, rows))
    by = {(r["repo"], r["path"]): r for r in dups.collect()}
    assert by[("fork/repo", "src/x.py")]["level"] == "repo"
    assert by[("fork/repo", "src/x.py")]["kept_id"] == file_id("orig/repo", "c", "x.py")
    # partial/repo is not a copy of orig/repo, but its x.py (more stars) wins at file level
    assert by[("orig/repo", "x.py")]["level"] == "file"
    assert kept_paths(kept) == [("orig/repo", "y.py"), ("partial/repo", "x.py"), ("partial/repo", "z.py")]


def test_same_result_on_any_partitioning(spark):
    rows = [rec(f"r{i % 7}", f"f{i % 11}.py", f"v{i % 13}\n", stars=i % 5) for i in range(200)]
    results = {tuple(kept_paths(dedup(frame(spark, rows, n))[0])) for n in (1, 4, 9)}
    assert len(results) == 1
