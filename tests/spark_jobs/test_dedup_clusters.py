"""The duplicate-cluster summary of the dedup stages: Spark and plain Python give the same dict."""

import random

import pytest

from spark_jobs.dedup_clusters import summarise, summarise_spark

pytestmark = pytest.mark.spark


def test_spark_summary_equals_the_plain_one(spark):
    rng = random.Random(7)
    files = [(f"id{i:03d}", f"repo{i % 5}", f"src/f{i}.py") for i in range(120)]
    pairs = []
    for kept in range(0, 120, 10):  # clusters of random sizes, some ties, one removed twice (dedup'd)
        for removed in range(kept + 1, kept + 1 + rng.randrange(1, 9)):
            pairs.append(("file", f"id{removed:03d}", f"id{kept:03d}"))
    pairs.append(pairs[0])
    pairs += [("repo", "fork/x", "acme/x"), ("repo", "copy/x", "acme/x"), ("repo", "mirror/y", "acme/y")]
    labels = {i: f"{r}/{p}" for i, r, p in files}
    plain = summarise(pairs, labels, top=4)
    on_spark = summarise_spark(spark.createDataFrame(pairs, "level string, removed string, kept string"),
                               spark.createDataFrame(files, "id string, repo string, path string"), top=4)
    assert on_spark == plain
    assert plain["repo"]["largest"][0] == {"size": 3, "kept": "acme/x", "example": "copy/x"}
    assert plain["file"]["removed"] == len({p for p in pairs if p[0] == "file"})
    assert len(plain["file"]["largest"]) == 4
    assert [c["size"] for c in plain["file"]["largest"]] == sorted((c["size"] for c in plain["file"]["largest"]),
                                                                  reverse=True)
