"""Which curated files of the included snapshots a release uses, and for which documents (pure Spark transforms).

Incremental dedup keeps a file only the first time it is seen, so month N+1 holds what changed since month N and a
repository's files end up spread over months. A release puts them back together:

- **File level**: every distinct content of the union once (same SHA256 in several snapshots: the earliest
  snapshot's record, as incremental dedup's index always wins).
- **Repository level**: each repository at its *newest crawled state* among the included snapshots (its latest
  snapshot): every path it has there, at the content it has there, taken from whichever included snapshot curated
  that exact content (the newest such). A path unchanged since month N was dropped from month N+1 as a duplicate
  of N; it comes back from N. A path deleted by then, or whose newest content did not pass curation, is left out
  of the repository document (an older, curated version would be stale).

"Exact content" compares the crawl's SHA256 (before the PII redaction rewrote anything), matched to curated
records by their id, which every stage keeps. A snapshot without a committed crawl contributes its curated
records as its crawl view.
"""

from __future__ import annotations


def raw_key(curated, crawl):
    """Curated records with ``raw_sha256``: the crawl's hash of the same record (id within its snapshot)."""
    from pyspark.sql import functions as F

    raw = crawl.select("snapshot", "id", F.col("sha256").alias("raw_sha256"))
    return (curated.join(raw, ["snapshot", "id"], "left")
            .withColumn("raw_sha256", F.coalesce(F.col("raw_sha256"), F.col("sha256"))))


def newest_state(crawl):
    """``(repo, path, newest_raw_sha256)`` of every path of each repository at its newest included snapshot."""
    from pyspark.sql import functions as F

    latest = crawl.groupBy("repo").agg(F.max("snapshot").alias("snapshot"))
    return (crawl.join(latest, ["repo", "snapshot"])
            .select("repo", "path", F.col("sha256").alias("newest_raw_sha256")))


def flag_files(curated, crawl):
    """``curated`` (FILES + snapshot) with ``file_level`` and ``repo_level`` flags; rows with neither are dropped.

    ``crawl`` is ``(snapshot, id, repo, path, sha256)`` of the included snapshots' raw repository state.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keyed = raw_key(curated, crawl)
    first_copy = F.row_number().over(Window.partitionBy("sha256").orderBy("snapshot", "id")) == 1
    keyed = keyed.withColumn("file_level", first_copy)
    state = newest_state(crawl)
    candidates = (keyed.join(state, ["repo", "path"])
                  .filter(F.col("raw_sha256") == F.col("newest_raw_sha256")))
    newest = F.row_number().over(Window.partitionBy("repo", "path").orderBy(F.col("snapshot").desc()))
    chosen = (candidates.withColumn("pick", newest).filter("pick = 1")
              .select("snapshot", "id", F.lit(True).alias("repo_level")))
    flagged = (keyed.join(chosen, ["snapshot", "id"], "left")
               .withColumn("repo_level", F.coalesce(F.col("repo_level"), F.lit(False))))
    return flagged.filter(F.col("file_level") | F.col("repo_level")).drop("raw_sha256")


def repo_level_counts(flagged, crawl) -> dict[str, int]:
    """How the repository view came out: paths at the newest state, how many were found curated, how many
    repositories' documents draw on several snapshots (the ones incremental dedup had split)."""
    from pyspark.sql import functions as F

    state = newest_state(crawl)
    repo_rows = flagged.filter("repo_level")
    spanning = (repo_rows.groupBy("repo").agg(F.countDistinct("snapshot").alias("n"))
                .filter("n > 1").count())
    paths = state.count()
    kept = repo_rows.count()
    return {"repo_level_paths": paths, "repo_level_files": kept, "repo_level_paths_not_curated": paths - kept,
            "repositories": repo_rows.select("repo").distinct().count(),
            "repositories_from_several_snapshots": spanning}
