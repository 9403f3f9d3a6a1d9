"""The Spark halves of the graph rules agree with the single-process ones (components, skewed buckets)."""

from __future__ import annotations

import random

from spark_jobs.near_dedup.components import connected_components as spark_components
from spark_jobs.near_dedup.graph import candidate_pairs, connected_components
from spark_jobs.near_dedup.spark import bucket_pairs


def test_large_star_small_star_matches_union_find(spark):
    rng = random.Random(4)
    nodes = [f"n{i:03d}" for i in range(60)]
    edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(45)]
    edges += [(f"c{i:03d}", f"c{i + 1:03d}") for i in range(40)]  # a long chain: many label-propagation rounds
    edges = [(a, b) for a, b in edges if a != b]
    comps, rounds = spark_components(spark.createDataFrame(edges, "src string, dst string"))
    assert dict(comps.collect()) == connected_components([], edges)
    assert rounds < 20


def test_skewed_bucket_gives_a_star_on_spark_too(spark):
    keys = {f"d{i:04d}": [7, i, 1000 + i // 3] for i in range(300)}  # band 0: one bucket of 300; band 2: triples
    rows = [(doc, band, key) for doc, ks in keys.items() for band, key in enumerate(ks)]
    members = spark.createDataFrame(rows, "id string, band int, key long")
    got = {(r.src, r.dst) for r in bucket_pairs(members, 32).collect()}
    assert got == candidate_pairs(keys, 32)
    assert len(got) == 299 + 100 * 3 - 2  # star + triples, less the two triple pairs the star already has
