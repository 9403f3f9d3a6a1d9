"""Near dedup as a Spark job: the same rules as ``local.py``, with bounded memory on every executor.

One Python pass (``mapInArrow``) reads each file once and emits its signature, band keys and (when verifying) its
64-bit shingle set, next to the keep-rule columns; that cached frame feeds everything after it, so the content is
never read or shuffled again. Buckets are (band, key) groups: one shuffle sorts them and one vectorized Python
pass walks the sorted runs; a bucket bigger than ``max_bucket_full_pairs`` contributes a star instead of all its
pairs, so skewed buckets stay linear. Only the
files that are in a candidate pair have their shingle sets joined to the pairs for exact Jaccard. Metrics come
from one aggregation per phase. Nothing is collected to the driver but counts.

Per-job cost dominates a Spark job at this scale (each job is planned, code-generated and scheduled), so the
plan is built to need few of them: see ``benchmarks/RESULTS-near-dedup.md``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.keep_rule import keep_order
from spark_jobs.near_dedup.components import connected_components
from spark_jobs.near_dedup.config import NearDedupConfig
from spark_jobs.near_dedup.minhash import signature_bytes, signature_from_bytes
from spark_jobs.near_dedup.outputs import DUPLICATES, KEEP_COLUMNS, SIGNATURES, scheme_tag
from spark_jobs.near_dedup.shingles import arrow_var_width
from spark_jobs.near_dedup.signing import pair_similarity, sign_documents

log = logging.getLogger(__name__)
SIGNED_FIELDS = [T.StructField("num_shingles", T.LongType()), T.StructField("signature", T.BinaryType()),
                 T.StructField("band_keys", T.ArrayType(T.LongType())), T.StructField("shingles", T.BinaryType())]
REPO_SIGNED = "repo string, signature binary, band_keys array<long>"
SCORED = "src string, dst string, jaccard double, estimated_jaccard double"
SHINGLE_DTYPE = np.dtype("<u8")  # a shingle set is stored as its sorted little-endian uint64 hashes
# Bucket rows (band, key, id, is_index: ~100 bytes) handled per numpy step; Arrow batches are gathered up to this.
BUCKET_ROWS_PER_STEP = 32_768


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
    """content + keep-rule columns -> keep-rule columns + shingle count, signature, band keys, shingle set."""
    hasher, ngram, verify = cfg.hasher(), cfg.ngram, cfg.verify

    def sign(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            signed = sign_documents(batch.column("content"), hasher, ngram)
            present = [k is not None for k in signed.band_keys]
            yield pa.RecordBatch.from_arrays(
                [batch.column(name) for name in KEEP_COLUMNS] + [
                    pa.array(signed.num_shingles, pa.int64()),
                    pa.array([signature_bytes(s) if p else None
                              for s, p in zip(signed.signatures, present, strict=True)], pa.binary()),
                    pa.array(signed.band_keys, pa.list_(pa.int64())),
                    pa.array([s.astype(SHINGLE_DTYPE, copy=False).tobytes() if p and verify else None
                              for s, p in zip(signed.shingle_sets, present, strict=True)], pa.binary())],
                names=[*KEEP_COLUMNS, *(f.name for f in SIGNED_FIELDS)])
    return sign


def _index_band_keys(cfg: NearDedupConfig):
    hasher = cfg.hasher()

    def keys(batches):
        for batch in batches:
            sigs = batch.column("signature").to_pylist()
            yield pa.RecordBatch.from_arrays(
                [batch.column(name) for name in batch.schema.names]
                + [pa.array([hasher.band_keys(signature_from_bytes(s)) for s in sigs], pa.list_(pa.int64()))],
                names=[*batch.schema.names, "band_keys"])
    return keys


def _repo_signature(cfg: NearDedupConfig):
    hasher = cfg.hasher()

    def reduce(table: pa.Table) -> pa.Table:
        sig = np.minimum.reduce([signature_from_bytes(s) for s in table.column("signature").to_pylist()])
        return pa.table({"repo": [table.column("repo")[0].as_py()], "signature": [signature_bytes(sig)],
                         "band_keys": pa.array([hasher.band_keys(sig)], pa.list_(pa.int64()))})
    return reduce


def _binary_rows(column: pa.Array, dtype: np.dtype) -> list[np.ndarray | None]:
    """The values of a binary column as numpy views of its buffer (no copy, no Python bytes); None for nulls."""
    data, offsets = arrow_var_width(column)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    return [data[offsets[i] : offsets[i + 1]].view(dtype) if valid[i] else None for i in range(len(column))]


def _score_batches(batches):
    """Exact Jaccard (when both shingle sets are present) and MinHash estimate of each (src, dst) row."""
    for batch in batches:
        sigs_a = _binary_rows(batch.column("src_sig"), np.dtype("<u4"))
        sigs_b = _binary_rows(batch.column("dst_sig"), np.dtype("<u4"))
        sets_a = _binary_rows(batch.column("src_shingles"), SHINGLE_DTYPE)
        sets_b = _binary_rows(batch.column("dst_shingles"), SHINGLE_DTYPE)
        exact, estimate = [], []
        for sa, sb, ga, gb in zip(sets_a, sets_b, sigs_a, sigs_b, strict=True):
            e, est = pair_similarity(sa, sb, ga, gb)
            exact.append(e)
            estimate.append(est)
        yield pa.RecordBatch.from_pydict({"src": batch.column("src"), "dst": batch.column("dst"),
                                          "jaccard": pa.array(exact, pa.float64()),
                                          "estimated_jaccard": pa.array(estimate, pa.float64())})


# -- plan ------------------------------------------------------------------------------------------------------

def bucket_pairs(members: DataFrame, max_full_pairs: int) -> DataFrame:
    """(src, dst) pairs of ``members`` (band, key, id[, is_index]) sharing a bucket, src < dst, distinct.

    One shuffle puts each bucket in one partition, sorted by (band, key, id); one Python pass walks the sorted
    rows with numpy and emits, per bucket of n > 1 files, all its pairs when n <= ``max_full_pairs`` or a star on
    its smallest id otherwise (a bucket of n boilerplate files costs n - 1 pairs). A bucket that runs over Arrow
    batches is carried to the next batch, and a star keeps only its centre, so memory stays bounded by the batch
    size whatever the skew. Pairs of two index files are skipped (their snapshot already deduplicated them).
    """
    if "is_index" not in members.columns:
        members = members.withColumn("is_index", F.lit(False))
    buckets = (members.select(F.col("band").cast("int").alias("band"), F.col("key").cast("long").alias("key"),
                              "id", F.col("is_index").cast("boolean").alias("is_index"))
               .repartition("band", "key").sortWithinPartitions("band", "key", "id"))
    return buckets.mapInArrow(_bucket_pair_batches(max_full_pairs), "src string, dst string").distinct()


def _bucket_pair_batches(max_full_pairs: int, rows_per_step: int = BUCKET_ROWS_PER_STEP):
    def pairs(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        pending: pa.Table | None = None  # rows of an unfinished bucket (at most max_full_pairs of them)
        star = None  # (band, key, centre id, centre is_index) while an unfinished bucket is known to be a star
        for group in _grouped(batches, rows_per_step):
            table = pa.Table.from_batches(group)
            if pending is not None:
                table = pa.concat_tables([pending, table])
            out, pending, star = _bucket_step(table, max_full_pairs, star, final=False)
            if out.num_rows:
                yield out
        if pending is not None:
            out, _, _ = _bucket_step(pending, max_full_pairs, None, final=True)
            if out.num_rows:
                yield out
    return pairs


def _grouped(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[list[pa.RecordBatch]]:
    """Consecutive batches gathered into groups of about ``rows`` rows (fewer numpy calls per row)."""
    group, size = [], 0
    for batch in batches:
        group.append(batch)
        size += batch.num_rows
        if size >= rows:
            yield group
            group, size = [], 0
    if group:
        yield group


def _bucket_step(table: pa.Table, max_full: int, star, final: bool):
    """Pairs of the buckets of ``table`` (rows sorted by band, key, id) -> (pairs batch, pending rows, star state).

    Unless ``final``, the last bucket may continue in the next batch: it is returned as pending rows, or, once it
    has more than ``max_full`` rows, its star pairs are emitted and only its centre is kept (``star``).
    """
    n = table.num_rows
    band, key = table.column("band").to_numpy(), table.column("key").to_numpy()
    index = table.column("is_index").to_numpy(zero_copy_only=False)
    ids = table.column("id").combine_chunks()
    starts = np.flatnonzero(np.concatenate(([True], (band[1:] != band[:-1]) | (key[1:] != key[:-1]))))
    ends = np.append(starts[1:], n)
    src_ids, dst_ids = [], []
    if star is not None and band[0] == star[0] and key[0] == star[1]:  # the carried star bucket continues
        rows = np.arange(starts[0], ends[0])
        rows = rows[~(index[rows] & star[3])]
        src_ids.append(pa.array([star[2]] * rows.size, pa.string()))
        dst_ids.append(ids.take(pa.array(rows)))
        if ends[0] == n and not final:
            return _pairs_batch(src_ids, dst_ids), None, star
        starts, ends = starts[1:], ends[1:]
    pending, star = None, None
    if not final and starts.size:
        last = starts[-1]
        if n - last <= max_full:
            pending = table.slice(last)
            starts, ends = starts[:-1], ends[:-1]
        else:  # already a star: emit it with the complete buckets, carry its centre
            star = (band[last], key[last], ids[last].as_py(), bool(index[last]))
    sizes = ends - starts
    src_rows, dst_rows = [], []
    for size in np.unique(sizes[(sizes > 1) & (sizes <= max_full)]):
        first = starts[sizes == size]
        a, b = np.triu_indices(int(size), 1)
        src_rows.append((first[:, None] + a).ravel())
        dst_rows.append((first[:, None] + b).ravel())
    for s, e in zip(starts[sizes > max_full], ends[sizes > max_full], strict=True):
        src_rows.append(np.full(e - s - 1, s))
        dst_rows.append(np.arange(s + 1, e))
    if src_rows:
        src, dst = np.concatenate(src_rows), np.concatenate(dst_rows)
        keep = ~(index[src] & index[dst])
        src_ids.append(ids.take(pa.array(src[keep])))
        dst_ids.append(ids.take(pa.array(dst[keep])))
    return _pairs_batch(src_ids, dst_ids), pending, star


def _pairs_batch(src: list[pa.Array], dst: list[pa.Array]) -> pa.RecordBatch:
    def column(parts):
        return pa.concat_arrays([p.cast(pa.string()) for p in parts]) if parts else pa.array([], pa.string())
    return pa.RecordBatch.from_arrays([column(src), column(dst)], names=["src", "dst"])


def _explode_bands(df: DataFrame) -> DataFrame:
    extra = ["is_index"] if "is_index" in df.columns else []
    return df.select("id", *extra, F.posexplode("band_keys").alias("band", "key"))


def _score(pairs: DataFrame, sides: DataFrame) -> DataFrame:
    """Attach both sides' signature and shingle set (``sides``: id, signature, shingles) and score each pair."""
    def side(prefix: str) -> DataFrame:
        return sides.select(F.col("id").alias(prefix), F.col("signature").alias(f"{prefix}_sig"),
                            F.col("shingles").alias(f"{prefix}_shingles"))

    joined = pairs.select("src", "dst").join(side("src"), "src").join(side("dst"), "dst")
    return joined.select("src", "dst", "src_sig", "dst_sig", "src_shingles", "dst_shingles").mapInArrow(
        _score_batches, SCORED)


def _keepers(components: DataFrame, attrs: DataFrame) -> DataFrame:
    """(id, keeper) for every member of every component: the first by (index first, keep rule)."""
    ranked = components.join(attrs, components.node == attrs.id)
    window = Window.partitionBy("component").orderBy(F.col("is_index").desc(), *keep_order())
    return ranked.select("id", "is_index", F.first("id").over(window).alias("keeper"))


@contextmanager
def _phase(name: str):
    """Log when a phase starts and how long it took: the job's progress report."""
    log.info("near dedup: %s ...", name)
    t0 = time.monotonic()
    yield
    log.info("near dedup: %s done in %.1f s", name, time.monotonic() - t0)


def _persist(df: DataFrame) -> DataFrame:
    return df.persist(StorageLevel.MEMORY_AND_DISK)


def dedup_frames(files: DataFrame, cfg: NearDedupConfig, *, snapshot: str, index: DataFrame | None = None
                 ) -> SparkDedup:
    """Plan and run near dedup of one snapshot's FILES DataFrame; outputs are persisted DataFrames."""
    hasher = cfg.hasher()
    spark = files.sparkSession
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg.batch_size))
    metrics: dict = {"s_curve": hasher.s_curve(), "engine": "spark"}
    drops = {"near_duplicate_repo": 0, "near_duplicate_file": 0}

    # Cached: the only pass over the content. Everything below reads these columns.
    keep_schema = files.select(*KEEP_COLUMNS).schema
    source = files.select(*KEEP_COLUMNS, "content")
    parallelism = spark.sparkContext.defaultParallelism
    if source.rdd.getNumPartitions() < parallelism:  # e.g. one unsplittable Parquet row group: spread the work
        log.info("near dedup: input has fewer partitions than %d cores; repartitioning it", parallelism)
        source = source.repartition(parallelism)
    signed = _persist(source.mapInArrow(
        _sign_batches(cfg), T.StructType([*keep_schema.fields, *SIGNED_FIELDS])))
    with _phase("signatures"):
        counts = signed.agg(F.count("*"), F.count(F.when(F.col("band_keys").isNull(), 1))).first()
    metrics["too_short_to_shingle"] = int(counts[1])
    log.info("near dedup: %d files signed, %d too short to shingle", counts[0], counts[1])
    live = signed.where(F.col("band_keys").isNotNull()).withColumn("is_index", F.lit(False))

    duplicates = []
    removed_repos = None
    if cfg.repo_level:
        with _phase("repository level"):
            removed_repos, repo_dups = _repo_level(signed, live, cfg, metrics)
            duplicates.append(repo_dups)
            drops["near_duplicate_repo"] = signed.join(removed_repos, "repo", "left_semi").count()
        live = live.join(removed_repos, "repo", "left_anti")
    live = live.select(*KEEP_COLUMNS, "is_index", "signature", "band_keys", "shingles")

    metrics["index_files"] = 0
    if index is not None:
        indexed = (index.withColumn("id", F.concat_ws("@", "id", "snapshot"))
                   .select(*KEEP_COLUMNS, "signature")
                   .mapInArrow(_index_band_keys(cfg), T.StructType(
                       [*index.select(*KEEP_COLUMNS, "signature").schema.fields,
                        T.StructField("band_keys", T.ArrayType(T.LongType()))])))
        live = live.unionByName(indexed.select(*KEEP_COLUMNS, F.lit(True).alias("is_index"), "signature",
                                               "band_keys", F.lit(None).cast("binary").alias("shingles")))
        metrics["index_files"] = index.count()

    # Persisted: scored, graphed, and the source of the files whose shingle sets are needed.
    pairs = _persist(bucket_pairs(_explode_bands(live), cfg.max_bucket_full_pairs))
    ids = pairs.select(F.col("src").alias("id")).unionByName(pairs.select(F.col("dst").alias("id"))).distinct()
    # Persisted: scored twice (candidates, then removed file vs keeper).
    involved = _persist(live.join(ids, "id", "left_semi").select(
        "id", "signature", F.col("shingles") if cfg.verify else F.lit(None).cast("binary").alias("shingles")))
    scored = _persist(_score(pairs, involved))
    # accept_pair() as a column expression: exact Jaccard when known, else the estimate; everything unverified.
    accepted = (F.coalesce("jaccard", "estimated_jaccard") >= cfg.threshold) if cfg.verify else F.lit(True)
    with _phase("candidate pairs and verification"):
        counts = scored.agg(F.count("*"), F.count(F.when(accepted, 1))).first()
    metrics["candidate_pairs"], metrics["verified_pairs"] = int(counts[0]), int(counts[1])
    log.info("near dedup: %d candidate pairs, %d verified", counts[0], counts[1])
    edges = scored.where(accepted).select("src", "dst")

    with _phase("connected components"):
        comps, rounds = connected_components(edges, max_iterations=cfg.max_cc_iterations,
                                             num_edges=metrics["verified_pairs"],
                                             max_local_edges=cfg.cc_local_max_edges)
        sizes = comps.groupBy("component").count().agg(F.count("*"), F.max("count")).first()
    metrics["cc_rounds"] = rounds
    metrics["components"], metrics["largest_component"] = int(sizes[0]), int(sizes[1] or 0)
    keepers = _keepers(comps, live.select(*KEEP_COLUMNS, "is_index"))
    removed = keepers.where(~F.col("is_index") & (F.col("id") != F.col("keeper")))
    file_dups = _persist(  # Persisted: counted, then written, then the anti-join key of the kept files.
        _score(removed.select(F.col("id").alias("src"), F.col("keeper").alias("dst")), involved)
        .select(F.col("src").alias("removed_id"), F.col("dst").alias("kept_id"), F.lit("file").alias("level"),
                "jaccard", "estimated_jaccard"))
    with _phase("keep rule"):
        counts = file_dups.agg(F.count("*"), F.count(F.when(F.col("jaccard") < cfg.threshold, 1))).first()
    drops["near_duplicate_file"], metrics["removed_below_threshold_to_keeper"] = int(counts[0]), int(counts[1])
    duplicates.append(file_dups)

    removed_ids = file_dups.select(F.col("removed_id").alias("id"))
    kept = files.join(removed_ids, "id", "left_anti")
    kept_signatures = signed.where(F.col("band_keys").isNotNull()).join(removed_ids, "id", "left_anti")
    if removed_repos is not None:
        kept = kept.join(removed_repos, "repo", "left_anti")
        kept_signatures = kept_signatures.join(removed_repos, "repo", "left_anti")
    kept = kept.select(*files.columns)
    all_dups = duplicates[0] if len(duplicates) == 1 else duplicates[0].unionByName(duplicates[1])
    all_dups = all_dups.select(*[F.col(f.name).cast(_spark_type(f.type)) for f in DUPLICATES])
    signature_rows = kept_signatures.select(*KEEP_COLUMNS, F.lit(snapshot).alias("snapshot"),
                                            F.lit(scheme_tag(cfg)).alias("scheme"), "num_shingles",
                                            "signature").select(*SIGNATURES.names)
    return SparkDedup(kept, all_dups, signature_rows, drops, metrics, edges)


def _repo_level(signed: DataFrame, live: DataFrame, cfg: NearDedupConfig, metrics: dict):
    repo_sigs = _persist(live.select("repo", "signature").groupBy("repo")  # Persisted: read 3 times.
                         .applyInArrow(_repo_signature(cfg), REPO_SIGNED).withColumnRenamed("repo", "id"))
    pairs = _persist(bucket_pairs(_explode_bands(repo_sigs), cfg.max_bucket_full_pairs))
    sides = repo_sigs.select("id", "signature", F.lit(None).cast("binary").alias("shingles"))
    scored = _persist(_score(pairs, sides))
    counts = scored.agg(F.count("*"), F.count(F.when(F.col("estimated_jaccard") >= cfg.repo_threshold, 1))).first()
    metrics["repo_candidate_pairs"], metrics["repo_verified_pairs"] = int(counts[0]), int(counts[1])
    edges = scored.where(F.col("estimated_jaccard") >= cfg.repo_threshold).select("src", "dst")
    comps, _ = connected_components(edges, max_iterations=cfg.max_cc_iterations,
                                    num_edges=metrics["repo_verified_pairs"], max_local_edges=cfg.cc_local_max_edges)
    repo_attrs = signed.groupBy("repo").agg(F.min("stars").alias("stars"), F.min("forks").alias("forks"),
                                            F.min("license").alias("license"),
                                            F.min("repo_created_at").alias("repo_created_at"))
    repo_attrs = repo_attrs.select(F.col("repo").alias("id"), "repo", F.lit("").alias("path"), "license", "stars",
                                   "forks", "repo_created_at", F.lit(False).alias("is_index"))
    removed = _keepers(comps, repo_attrs).where(F.col("id") != F.col("keeper"))
    dups = _persist(  # Persisted: counted, written, and the anti-join key of the removed repositories.
        _score(removed.select(F.col("id").alias("src"), F.col("keeper").alias("dst")), sides)
        .select(F.col("src").alias("removed_id"), F.col("dst").alias("kept_id"), F.lit("repo").alias("level"),
                "jaccard", "estimated_jaccard"))
    metrics["repos_removed"] = dups.count()
    return dups.select(F.col("removed_id").alias("repo")), dups


def _spark_type(arrow_type) -> str:
    return {pa.string(): "string", pa.float64(): "double"}[arrow_type]
