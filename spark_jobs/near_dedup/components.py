"""Connected components in Spark SQL: alternating large-star / small-star (Kiveris et al., 2014).

GraphFrames is not available, and a label-propagation loop needs as many rounds as the graph's diameter (long
chains of near-duplicates are common: v1 -> v2 -> v3 ...). Large-star / small-star converges in O(log^2 n) rounds
to one star per component centred on its smallest node, using only group-by-min and joins; each round is
checkpointed so the query plan does not grow with the number of rounds, and the loop stops at the first round
whose edges are such stars (``is_star_forest``).
"""

from __future__ import annotations

import logging

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs.near_dedup.graph import connected_components as union_find

log = logging.getLogger(__name__)


def _canonical(edges: DataFrame, a: str, b: str) -> DataFrame:
    """Undirected edges as (u, v) with u < v, self-loops and repeats dropped."""
    return (edges.where(F.col(a) != F.col(b))
            .select(F.least(a, b).alias("u"), F.greatest(a, b).alias("v")).distinct())


def large_star(edges: DataFrame) -> DataFrame:
    """Connect every neighbour larger than a node to the smallest node of that node's closed neighbourhood."""
    adj = edges.select(F.col("u").alias("a"), F.col("v").alias("b")).unionByName(
        edges.select(F.col("v").alias("a"), F.col("u").alias("b")))
    smallest = adj.groupBy("a").agg(F.min("b").alias("m")).select("a", F.least("a", "m").alias("m"))
    return _canonical(adj.where(F.col("b") > F.col("a")).join(smallest, "a"), "b", "m")


def small_star(edges: DataFrame) -> DataFrame:
    """Connect every node and its smaller neighbours to the smallest of them."""
    smallest = edges.groupBy("v").agg(F.min("u").alias("m"))
    joined = edges.join(smallest, "v")
    return _canonical(joined.select("u", "m").unionByName(joined.select(F.col("v").alias("u"), "m")), "u", "m")


def _local_stars(src: str, dst: str):
    """This partition's edges -> one (smallest node, node) edge per other node of each of its local components."""
    def stars(batches):
        edges = [pair for batch in batches
                 for pair in zip(batch.column(src).to_pylist(), batch.column(dst).to_pylist(), strict=True)]
        local = sorted((root, node) for node, root in union_find([], edges).items() if node != root)
        yield pa.RecordBatch.from_pydict({"u": [u for u, _ in local], "v": [v for _, v in local]},
                                         schema=pa.schema([("u", pa.string()), ("v", pa.string())]))
    return stars


def is_star_forest(edges: DataFrame) -> bool:
    """True when the canonical edges (u < v) are disjoint stars, each centred on its smallest node.

    That is the fixed point of large-star / small-star (neither changes such a graph), so the loop stops as soon as
    one round reaches it, instead of running one more round to see that nothing changed. It holds when no node is
    both a centre (u) and a leaf (v) and every leaf has one centre: one aggregation by node.
    """
    roles = edges.select(F.col("u").alias("node"), F.lit(0).alias("leaf")).unionByName(
        edges.select(F.col("v").alias("node"), F.lit(1).alias("leaf")))
    per_node = roles.groupBy("node").agg(F.sum("leaf").alias("centres_above"), F.min("leaf").alias("min_role"))
    # bad: a leaf with two centres, or a node that is a leaf (sum >= 1) and a centre (some row with leaf = 0)
    bad = per_node.where((F.col("centres_above") > 1) | ((F.col("centres_above") >= 1) & (F.col("min_role") == 0)))
    return bad.limit(1).count() == 0


def connected_components(edges: DataFrame, src: str = "src", dst: str = "dst", max_iterations: int = 64, *,
                         num_edges: int | None = None, max_local_edges: int = 1_000_000):
    """(node, component) for every node of ``edges``; component = the component's smallest node.

    First each partition of at most ``max_local_edges`` edges (``num_edges``, when the caller already counted
    them, sets how many partitions that takes) replaces its edges by one star per local component, by union-find
    over that partition only: the graph keeps its components, memory stays bounded by the partition, and when the
    edges fit one partition every component is already a star. Large-star / small-star rounds then join what
    spans partitions. Returns the DataFrame and the number of those rounds (0 when the contraction left stars on
    the smallest nodes). Raises if ``max_iterations`` rounds do not converge.
    """
    partitions = max(1, -(-num_edges // max_local_edges)) if num_edges is not None else 0
    if partitions:
        edges = edges.repartition(partitions) if partitions > 1 else edges.coalesce(1)
    current = _canonical(edges.mapInArrow(_local_stars(src, dst), "u string, v string"), "u", "v").localCheckpoint()
    round_ = 0
    # One partition: its union-find left one star per component on the smallest node, no test needed.
    while partitions != 1 and not is_star_forest(current):
        if round_ == max_iterations:
            raise RuntimeError(f"connected components did not converge in {max_iterations} rounds "
                               "(raise stages.near_dedup.max_cc_iterations)")
        round_ += 1
        current = small_star(large_star(current)).localCheckpoint()  # eager: each round starts from materialized edges
    log.info("connected components converged after %d round(s)", round_)
    stars = current.select(F.col("v").alias("node"), F.col("u").alias("component"))
    centres = current.select(F.col("u").alias("node"), F.col("u").alias("component"))
    return stars.unionByName(centres).distinct(), round_
