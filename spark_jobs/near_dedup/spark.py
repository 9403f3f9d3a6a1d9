"""Near dedup as a Spark job: the same rules as ``local.py``, with bounded memory on every executor.

Signatures are computed per Arrow batch (``mapInArrow``); a repository's signature is the minimum of its files'
(``applyInArrow`` per repository); buckets are (band, key) groups, and a bucket bigger than
``max_bucket_full_pairs`` contributes a star instead of all its pairs, so skewed buckets stay linear. Exact
Jaccard needs shingle sets only for documents that are in a candidate pair. Nothing is collected to the driver
but counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from spark_jobs.keep_rule import keep_order
from spark_jobs.near_dedup.components import connected_components
from spark_jobs.near_dedup.config import NearDedupConfig
from spark_jobs.near_dedup.minhash import signature_bytes, signature_from_bytes
from spark_jobs.near_dedup.outputs import DUPLICATES, KEEP_COLUMNS, SIGNATURES, scheme_tag
from spark_jobs.near_dedup.shingles import shingle_hashes
from spark_jobs.near_dedup.signing import pair_similarity, sign_documents

log = logging.getLogger(__name__)
SIGNED = "id string, num_shingles long, signature binary, band_keys array<long>"
REPO_SIGNED = "repo string, signature binary, band_keys array<long>"
SHINGLED = "id string, shingles array<long>"
SCORED = "src string, dst string, jaccard double, estimated_jaccard double"


@dataclass
class SparkDedup:
    kept: DataFrame
    duplicates: DataFrame
    signatures: DataFrame
    drops: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    edges: DataFrame | None = None  # accepted file pairs (src, dst) (benchmarks score them)


# -- executor-side functions (pure, one Arrow batch at a time) --------------------------------------------------

def _sign_batches(cfg: NearDedupConfig):
    hasher, ngram = cfg.hasher(), cfg.ngram

    def sign(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            signed = sign_documents(batch.column("content").to_pylist(), hasher, ngram)
            present = [k is not None for k in signed.band_keys]
            yield pa.RecordBatch.from_pydict({
                "id": batch.column("id"),
                "num_shingles": pa.array(signed.num_shingles, pa.int64()),
                "signature": pa.array([signature_bytes(s) if p else None
                                       for s, p in zip(signed.signatures, present, strict=True)], pa.binary()),
                "band_keys": pa.array(signed.band_keys, pa.list_(pa.int64())),
            })
    return sign


def _index_band_keys(cfg: NearDedupConfig):
    hasher = cfg.hasher()

    def keys(batches):
        for batch in batches:
            sigs = batch.column("signature").to_pylist()
            yield pa.RecordBatch.from_pydict({
                "id": batch.column("id"),
                "band_keys": pa.array([hasher.band_keys(signature_from_bytes(s)) for s in sigs],
                                      pa.list_(pa.int64())),
            })
    return keys


def _repo_signature(cfg: NearDedupConfig):
    hasher = cfg.hasher()

    def reduce(table: pa.Table) -> pa.Table:
        sig = np.minimum.reduce([signature_from_bytes(s) for s in table.column("signature").to_pylist()])
        return pa.table({"repo": [table.column("repo")[0].as_py()], "signature": [signature_bytes(sig)],
                         "band_keys": pa.array([hasher.band_keys(sig)], pa.list_(pa.int64()))})
    return reduce


def _shingle_batches(cfg: NearDedupConfig):
    ngram = cfg.ngram

    def shingle(batches):
        for batch in batches:
            sets = [shingle_hashes(t, ngram).view(np.int64) for t in batch.column("content").to_pylist()]
            yield pa.RecordBatch.from_pydict({"id": batch.column("id"),
                                              "shingles": pa.array(sets, pa.list_(pa.int64()))})
    return shingle


def _score_batches(batches):
    """Exact Jaccard (when both shingle sets are present) and MinHash estimate of each (src, dst) row."""
    for batch in batches:
        cols = batch.to_pydict()
        exact, estimate = [], []
        for sa, sb, ga, gb in zip(cols["src_shingles"], cols["dst_shingles"], cols["src_sig"], cols["dst_sig"],
                                  strict=True):
            e, est = pair_similarity(None if sa is None else np.asarray(sa, dtype=np.int64),
                                     None if sb is None else np.asarray(sb, dtype=np.int64),
                                     signature_from_bytes(ga), signature_from_bytes(gb))
            exact.append(e)
            estimate.append(est)
        yield pa.RecordBatch.from_pydict({"src": batch.column("src"), "dst": batch.column("dst"),
                                          "jaccard": pa.array(exact, pa.float64()),
                                          "estimated_jaccard": pa.array(estimate, pa.float64())})


# -- plan ------------------------------------------------------------------------------------------------------

def bucket_pairs(members: DataFrame, max_full_pairs: int) -> DataFrame:
    """(src, dst) pairs of ``members`` (band, key, id) sharing a bucket: all pairs, or a star for big buckets."""
    sizes = (members.groupBy("band", "key").agg(F.count("*").alias("n"), F.min("id").alias("centre"))
             .where(F.col("n") > 1))
    bucketed = members.join(sizes, ["band", "key"])
    small = bucketed.where(F.col("n") <= max_full_pairs).select("band", "key", "id")
    full = (small.alias("a").join(small.alias("b"), ["band", "key"]).where(F.col("a.id") < F.col("b.id"))
            .select(F.col("a.id").alias("src"), F.col("b.id").alias("dst")))
    star = (bucketed.where((F.col("n") > max_full_pairs) & (F.col("id") != F.col("centre")))
            .select(F.col("centre").alias("src"), F.col("id").alias("dst")))
    return full.unionByName(star).distinct()


def _explode_bands(df: DataFrame) -> DataFrame:
    return df.select("id", F.posexplode("band_keys").alias("band", "key"))


def _score(pairs: DataFrame, sigs: DataFrame, sets: DataFrame | None) -> DataFrame:
    """Attach both sides' signatures (and shingle sets when verifying) and compute the similarities."""
    def side(df: DataFrame, name: str, prefix: str) -> DataFrame:
        return df.select(F.col("id").alias(prefix), F.col(df.columns[1]).alias(f"{prefix}_{name}"))

    joined = pairs.join(side(sigs, "sig", "src"), "src").join(side(sigs, "sig", "dst"), "dst")
    if sets is not None:
        joined = joined.join(side(sets, "shingles", "src"), "src", "left").join(side(sets, "shingles", "dst"),
                                                                                "dst", "left")
    else:
        joined = (joined.withColumn("src_shingles", F.lit(None).cast("array<long>"))
                  .withColumn("dst_shingles", F.lit(None).cast("array<long>")))
    return joined.select("src", "dst", "src_sig", "dst_sig", "src_shingles", "dst_shingles").mapInArrow(
        _score_batches, SCORED)


def _keepers(components: DataFrame, attrs: DataFrame) -> DataFrame:
    """(id, keeper) for every member of every component: the first by (index first, keep rule)."""
    ranked = components.join(attrs, components.node == attrs.id)
    window = Window.partitionBy("component").orderBy(F.col("is_index").desc(), *keep_order())
    return ranked.select("id", "is_index", F.first("id").over(window).alias("keeper"))


def dedup_frames(files: DataFrame, cfg: NearDedupConfig, *, snapshot: str, index: DataFrame | None = None
                 ) -> SparkDedup:
    """Plan and run near dedup of one snapshot's FILES DataFrame; outputs are persisted DataFrames."""
    hasher = cfg.hasher()
    files.sparkSession.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg.batch_size))
    metrics: dict = {"s_curve": hasher.s_curve(), "engine": "spark"}
    drops = {"near_duplicate_repo": 0, "near_duplicate_file": 0}

    # Persisted: signatures feed repo level, file level, the scores and the index output.
    signed = files.select("id", "content").mapInArrow(_sign_batches(cfg), SIGNED).persist(StorageLevel.MEMORY_AND_DISK)
    metrics["too_short_to_shingle"] = signed.where(F.col("band_keys").isNull()).count()
    signed = signed.where(F.col("band_keys").isNotNull())
    with_repo = signed.join(files.select("id", "repo"), "id")

    duplicates = []
    removed_repos = None
    if cfg.repo_level:
        removed_repos, repo_dups = _repo_level(files, with_repo, cfg, metrics)
        duplicates.append(repo_dups)
        removed_files = files.join(removed_repos, "repo", "left_semi").select("id")
        drops["near_duplicate_repo"] = removed_files.count()
        live = signed.join(files.join(removed_repos, "repo", "left_anti").select("id"), "id", "left_semi")
    else:
        live = signed
    live = live.select("id", "signature", "band_keys")

    attrs = files.select(*KEEP_COLUMNS, F.lit(False).alias("is_index"))
    metrics["index_files"] = 0
    if index is not None:
        index = index.withColumn("id", F.concat_ws("@", "id", "snapshot"))
        indexed = index.select("id", "signature").mapInArrow(_index_band_keys(cfg), "id string, band_keys array<long>")
        live = live.unionByName(index.select("id", "signature").join(indexed, "id"))
        attrs = attrs.unionByName(index.select(*KEEP_COLUMNS, F.lit(True).alias("is_index")))
        metrics["index_files"] = index.count()
    pairs = bucket_pairs(_explode_bands(live), cfg.max_bucket_full_pairs)
    if index is not None:  # two index files were deduplicated when their own snapshot ran: skip their pairs
        index_ids = attrs.where("is_index").select("id")
        pairs = (pairs.join(index_ids.withColumnRenamed("id", "src"), "src", "left_anti").unionByName(
            pairs.join(index_ids.withColumnRenamed("id", "src"), "src", "left_semi")
            .join(index_ids.withColumnRenamed("id", "dst"), "dst", "left_anti")))
    pairs = pairs.persist(StorageLevel.MEMORY_AND_DISK)  # Persisted: counted, then scored, then graphed.
    metrics["candidate_pairs"] = pairs.count()

    sets = None
    if cfg.verify:
        involved = pairs.select(F.col("src").alias("id")).unionByName(pairs.select(F.col("dst").alias("id")))
        # Persisted: shingle sets are read by the pair scores and again by the duplicates' Jaccard.
        sets = (files.join(involved.distinct(), "id", "left_semi").select("id", "content")
                .mapInArrow(_shingle_batches(cfg), SHINGLED).persist(StorageLevel.MEMORY_AND_DISK))
    sigs = live.select("id", "signature")
    scored = _score(pairs, sigs, sets)
    # accept_pair() as a column expression: exact Jaccard when known, else the estimate; everything unverified.
    accepted = (F.coalesce("jaccard", "estimated_jaccard") >= cfg.threshold) if cfg.verify else F.lit(True)
    edges = scored.where(accepted).select("src", "dst").persist(
        StorageLevel.MEMORY_AND_DISK)  # Persisted: counted, then the input of every components round.
    metrics["verified_pairs"] = edges.count()

    comps, rounds = connected_components(edges, max_iterations=cfg.max_cc_iterations)
    metrics["cc_rounds"] = rounds
    sizes = comps.groupBy("component").count()
    metrics["components"] = sizes.count()
    metrics["largest_component"] = sizes.agg(F.max("count")).first()[0] or 0
    keepers = _keepers(comps, attrs)
    removed = keepers.where(~F.col("is_index") & (F.col("id") != F.col("keeper")))
    file_dups = _score(removed.select(F.col("id").alias("src"), F.col("keeper").alias("dst")), sigs, sets)
    file_dups = file_dups.select(F.col("src").alias("removed_id"), F.col("dst").alias("kept_id"),
                                 F.lit("file").alias("level"), "jaccard", "estimated_jaccard").persist(
        StorageLevel.MEMORY_AND_DISK)  # Persisted: counted twice, then written.
    drops["near_duplicate_file"] = file_dups.count()
    metrics["removed_below_threshold_to_keeper"] = file_dups.where(F.col("jaccard") < cfg.threshold).count()
    duplicates.append(file_dups)

    kept = files.join(file_dups.select(F.col("removed_id").alias("id")), "id", "left_anti")
    if removed_repos is not None:
        kept = kept.join(removed_repos, "repo", "left_anti")
    kept = kept.select(*files.columns)
    all_dups = duplicates[0] if len(duplicates) == 1 else duplicates[0].unionByName(duplicates[1])
    all_dups = all_dups.select(*[F.col(f.name).cast(_spark_type(f.type)) for f in DUPLICATES])
    signature_rows = (signed.join(kept.select(*KEEP_COLUMNS), "id")
                      .select(*KEEP_COLUMNS, F.lit(snapshot).alias("snapshot"), F.lit(scheme_tag(cfg)).alias("scheme"),
                              "num_shingles", "signature").select(*SIGNATURES.names))
    return SparkDedup(kept, all_dups, signature_rows, drops, metrics, edges)


def _repo_level(files: DataFrame, with_repo: DataFrame, cfg: NearDedupConfig, metrics: dict):
    repo_sigs = (with_repo.select("repo", "signature").groupBy("repo").applyInArrow(_repo_signature(cfg), REPO_SIGNED)
                 .withColumnRenamed("repo", "id").persist(StorageLevel.MEMORY_AND_DISK))  # Persisted: read 3 times.
    pairs = bucket_pairs(_explode_bands(repo_sigs), cfg.max_bucket_full_pairs).persist(StorageLevel.MEMORY_AND_DISK)
    metrics["repo_candidate_pairs"] = pairs.count()
    scored = _score(pairs, repo_sigs.select("id", "signature"), None)
    edges = scored.where(F.col("estimated_jaccard") >= cfg.repo_threshold).select("src", "dst")
    metrics["repo_verified_pairs"] = edges.count()
    comps, _ = connected_components(edges, max_iterations=cfg.max_cc_iterations)
    repo_attrs = files.groupBy("repo").agg(F.min("stars").alias("stars"), F.min("forks").alias("forks"),
                                           F.min("license").alias("license"),
                                           F.min("repo_created_at").alias("repo_created_at"))
    repo_attrs = repo_attrs.select(F.col("repo").alias("id"), "repo", F.lit("").alias("path"), "license", "stars",
                                   "forks", "repo_created_at", F.lit(False).alias("is_index"))
    removed = _keepers(comps, repo_attrs).where(F.col("id") != F.col("keeper"))
    dups = _score(removed.select(F.col("id").alias("src"), F.col("keeper").alias("dst")),
                  repo_sigs.select("id", "signature"), None)
    dups = dups.select(F.col("src").alias("removed_id"), F.col("dst").alias("kept_id"), F.lit("repo").alias("level"),
                       "jaccard", "estimated_jaccard").persist(StorageLevel.MEMORY_AND_DISK)  # Persisted: reused.
    metrics["repos_removed"] = dups.count()
    return dups.select(F.col("removed_id").alias("repo")), dups


def _spark_type(arrow_type) -> str:
    return {pa.string(): "string", pa.float64(): "double"}[arrow_type]
