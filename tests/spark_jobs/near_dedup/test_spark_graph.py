"""The Spark halves of the graph rules agree with the single-process ones (components, skewed buckets)."""

from __future__ import annotations

import random

from spark_jobs.near_dedup.budget import MemoryBudget
from spark_jobs.near_dedup.components import connected_components as spark_components
from spark_jobs.near_dedup.components import is_star_forest
from spark_jobs.near_dedup.graph import candidate_pairs, connected_components
from spark_jobs.near_dedup.spark import bucket_pairs, partition_values, spark_hash_int

BUDGET = MemoryBudget(MemoryBudget.MIN_TASK_BYTES)


def band_frame(spark, keys: dict[str, list[int]], index: set[str] = frozenset()):
    """(id, band_keys, is_index) rows: file -> its key at each band position."""
    return spark.createDataFrame([(doc, ks, doc in index) for doc, ks in keys.items()],
                                 "id string, band_keys array<long>, is_index boolean")


def test_large_star_small_star_matches_union_find(spark):
    from pyspark.sql import functions as F

    rng = random.Random(4)
    nodes = [f"n{i:03d}" for i in range(60)]
    edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(45)]
    edges += [(f"c{i:03d}", f"c{i + 1:03d}") for i in range(40)]  # a long chain: many label-propagation rounds
    edges = [(a, b) for a, b in edges if a != b]
    frame = spark.createDataFrame(edges, "src string, dst string")
    comps, rounds = spark_components(frame)
    assert dict(comps.collect()) == connected_components([], edges)
    assert rounds < 20
    # Contracted in partitions of at most 8 edges: the rest is joined by large-star / small-star rounds.
    comps, rounds = spark_components(frame, num_edges=len(edges), max_local_edges=8)
    assert dict(comps.collect()) == connected_components([], edges)
    assert 0 < rounds < 20
    # All edges in one partition: the contraction alone gives the stars (the star test is skipped; checked here).
    comps, rounds = spark_components(frame, num_edges=len(edges), max_local_edges=len(edges))
    assert rounds == 0 and dict(comps.collect()) == connected_components([], edges)
    star_edges = comps.where("node != component").select(F.col("component").alias("u"), F.col("node").alias("v"))
    assert is_star_forest(star_edges)


def test_star_forest_test_accepts_only_min_centred_stars(spark):
    def stars(edges):
        return is_star_forest(spark.createDataFrame(edges, "u string, v string"))

    assert stars([("a", "b"), ("a", "c"), ("d", "e")])
    assert not stars([("a", "b"), ("b", "c")])  # a path: b is a centre and a leaf
    assert not stars([("a", "c"), ("b", "c")])  # c has two centres
    comps, rounds = spark_components(spark.createDataFrame([("a", "b"), ("a", "c")], "src string, dst string"))
    assert rounds == 0 and sorted(map(tuple, comps.collect())) == [("a", "a"), ("b", "a"), ("c", "a")]


def test_bucket_pairs_skip_two_index_files_but_keep_index_vs_new(spark):
    # Band 0: bucket 5 holds two index files and a new one; band 1: bucket 9 is a star of 40 index files and a new
    # one. Every other key is unique to its file.
    keys = {"i1@s": [5, 101], "i2@s": [5, 102], "n1": [5, 103]}
    keys |= {f"j{i:03d}@s": [200 + i, 9] for i in range(40)} | {"n2": [300, 9]}
    frame = band_frame(spark, keys, index={k for k in keys if k.endswith("@s")})
    got = {(r.src, r.dst) for r in bucket_pairs(frame, 32, BUDGET).collect()}
    assert got == {("i1@s", "n1"), ("i2@s", "n1"), ("j000@s", "n2")}


def test_skewed_bucket_gives_a_star_on_spark_too(spark):
    keys = {f"d{i:04d}": [7, i, 1000 + i // 3] for i in range(300)}  # band 0: one bucket of 300; band 2: triples
    frame = band_frame(spark, keys).drop("is_index")
    got = {(r.src, r.dst) for r in bucket_pairs(frame, 32, BUDGET).collect()}
    assert got == candidate_pairs(keys, 32)
    assert len(got) == 299 + 100 * 3 - 2  # star + triples, less the two triple pairs the star already has
    # The same key at another band position is another bucket; many bucket partitions give the same pairs.
    shifted = {doc: [ks[0] + 1, *ks[1:]] if int(doc[1:]) % 2 else [ks[1], ks[0], ks[2]] for doc, ks in keys.items()}
    frame = band_frame(spark, shifted).repartition(7)
    rows = 5 * BUDGET.partition_bytes // 300  # sized for five bucket partitions
    got = {(r.src, r.dst) for r in bucket_pairs(frame, 32, BUDGET, rows=rows).collect()}
    assert got == candidate_pairs(shifted, 32)


def test_each_bucket_partition_label_lands_in_its_own_spark_partition(spark):
    from pyspark.sql import functions as F

    assert [spark_hash_int(v) for v in range(50)] == [
        r[0] for r in spark.range(50).select(F.hash(F.col("id").cast("int"))).collect()]
    for n in (1, 2, 3, 8, 13):
        labels = partition_values(n)
        frame = spark.createDataFrame([(v,) for v in labels], "part int").repartition(n, "part")
        landed = frame.rdd.glom().map(lambda rows: [r.part for r in rows]).collect()
        assert landed == [[v] for v in labels]


def test_bucket_pass_matches_the_reference_rule_for_any_batch_split():
    """The executor side of ``bucket_pairs``: sorted (band, key, id) rows in Arrow batches of any size (a bucket
    may span many batches, a star bucket is carried by its centre) give exactly the reference rule's pairs."""
    import itertools

    import pyarrow as pa

    from spark_jobs.near_dedup.graph import bucket_pairs as reference
    from spark_jobs.near_dedup.spark import _bucket_pair_batches

    rng = random.Random(1)
    for _ in range(200):
        rows = {}
        for _ in range(rng.randint(1, 12)):
            band, key = rng.randint(0, 2), rng.randint(-5, 5)
            for _ in range(rng.choice([1, 1, 2, 3, 5, 8, 33, 40, 100])):
                rows[(band, key, f"d{rng.randint(0, 400):04d}")] = rng.random() < 0.3  # is_index
        ordered = sorted(rows)
        max_full = rng.choice([2, 3, 5, 32])
        expected = set()
        for _, group in itertools.groupby(ordered, key=lambda r: r[:2]):
            group = list(group)
            expected |= {(a, b) for a, b in reference([r[2] for r in group], max_full)
                         if not (rows[(*group[0][:2], a)] and rows[(*group[0][:2], b)])}
        table = pa.table({"band": pa.array([r[0] for r in ordered], pa.int32()),
                          "key": pa.array([r[1] for r in ordered], pa.int64()),
                          "id": [r[2] for r in ordered], "is_index": [rows[r] for r in ordered]})
        got = set()
        batches = table.to_batches(max_chunksize=rng.choice([1, 2, 7, 1000]))
        for out in _bucket_pair_batches(max_full, rows_per_step=rng.choice([1, 5, 64]))(iter(batches)):
            got |= set(zip(out.column("src").to_pylist(), out.column("dst").to_pylist(), strict=True))
        assert got == expected


def test_one_task_steps_match_the_joins(spark):
    """The one-task path of the estimate and exact steps (pairs and sides unioned into one partition) gives the
    rows of the distributed path (two shuffle joins), drops a pair whose side is missing in both, both measures in
    one task give the joins' estimates and left-joined exact Jaccards, and the one-task candidate step gives the
    distributed bucket pass's pairs with the same flags and estimates."""
    import numpy as np

    from spark_jobs.near_dedup.config import NearDedupConfig
    from spark_jobs.near_dedup.shingles import shingle_set_arrays
    from spark_jobs.near_dedup.signing import sign_documents
    from spark_jobs.near_dedup.spark import (
        SETS,
        _estimates,
        _exact,
        _in_one_task,
        _one_task_candidates,
        _shingle_set_batches,
        bucket_pairs,
    )

    rng = random.Random(4)
    base = [" ".join(f"w{rng.randint(0, 60)}" for _ in range(40)) for _ in range(6)]
    texts = [b + f" tail{i % 3}" * (i % 4) for i, b in enumerate(base * 5)]  # 30 files, near copies of 6
    ids = [f"f{i:02d}" for i in range(len(texts))]
    cfg = NearDedupConfig(num_perm=32, bands=8, rows=4)
    signed = sign_documents(texts, cfg.hasher(), cfg.ngram)
    sigs = [np.ascontiguousarray(s).view(np.uint8).tobytes() for s in signed.signatures]
    index = {"f03", "f09", "f15"}
    live = spark.createDataFrame([(i, s, [int(k) for k in keys], i in index) for i, s, keys in
                                  zip(ids, sigs, signed.band_keys, strict=True)],
                                 "id string, signature binary, band_keys array<long>, is_index boolean")

    def rows(df, *cols):
        return sorted(tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in df.select(*cols).collect())

    one_task = live.coalesce(1).mapInArrow(_one_task_candidates(cfg), "src string, dst string, src_is_index "
                                           "boolean, dst_is_index boolean, estimated_jaccard double")
    pairs = bucket_pairs(live, cfg.max_bucket_full_pairs, BUDGET, distinct=False)
    joined = _estimates(pairs, live, cfg, 3, flags=("is_index",), distinct=True)
    cols = ("src", "dst", "src_is_index", "dst_is_index", "estimated_jaccard")
    assert rows(one_task, *cols) == rows(joined, *cols) and one_task.count() > 20
    assert not one_task.where("src_is_index and dst_is_index").count()

    some = pairs.distinct().union(spark.createDataFrame([("f00", "zz-missing")], "src string, dst string"))
    assert rows(_estimates(some, live, cfg, 3, one_task=True), "src", "dst", "estimated_jaccard") == \
        rows(_estimates(some, live, cfg, 3), "src", "dst", "estimated_jaccard")
    content = spark.createDataFrame(list(zip(ids[:-2], texts[:-2], strict=True)), "id string, content string")
    sets = content.mapInArrow(_shingle_set_batches(cfg.ngram, 2**20), SETS)  # the last two files have no set
    one, joins = rows(_exact(some, sets, 3, one_task=True), "*"), rows(_exact(some, sets, 3), "*")
    assert one == joins and len(one) < some.count()
    for src, dst, jaccard in one:  # against the sets themselves
        values, offsets = shingle_set_arrays([texts[ids.index(src)], texts[ids.index(dst)]], cfg.ngram)
        a, b = set(values[offsets[0]:offsets[1]].tolist()), set(values[offsets[1]:offsets[2]].tolist())
        assert jaccard == round(len(a & b) / len(a | b), 9)
    # Both measures in one task (the keep rule's scores): the estimates' pairs, exact Jaccards of a left join.
    both = rows(_in_one_task(some, signatures=live, sets=sets, num_perm=cfg.num_perm), "*")
    left = (_estimates(some, live, cfg, 3).join(_exact(some, sets, 3), ["src", "dst"], "left")
            .select("src", "dst", "estimated_jaccard", "jaccard"))
    assert both == rows(left, "*") and any(r[3] is None for r in both) and len(both) > len(one)
