"""Near dedup as a Spark job: the same rules as ``local.py``, every batch and block sized in bytes (``budget.py``).

The plan, each step one pass over bounded batches:

1. **signatures**: one Python pass (``mapInArrow``) over the content emits each file's shingle count, signature and
   band keys next to its keep-rule columns (~1.3 KB a file, whatever its size), persisted partitioned by id (not
   partitioned when the one-task steps below will surely run: nothing joins on it then);
2. **buckets**: the (band, key, id) rows of a batch bound for one bucket partition are packed into one Arrow blob
   by the Python worker (no Spark row per file and band), one shuffle of the blobs, then per partition a sort and
   one vectorized pass over the sorted runs (a bucket bigger than ``max_bucket_full_pairs`` is a star; a bucket
   running over steps is carried by its centre);
3. **estimates**: the pairs are deduplicated in their source's partition and get each candidate pair's MinHash
   estimate (joins on the id-partitioned signatures); a pair estimated at or below ``signing.estimate_floor`` (a
   pair at the threshold shows such an estimate with probability at most ``estimate_reject_error``) is rejected
   there (on real code most LSH candidates are such pairs), and one at or above ``signing.estimate_ceiling`` (a
   pair below the threshold reaches it with probability at most ``estimate_accept_error``) is accepted;
4. **exact verification** of the rest: the content of the files they involve is read again (a semi-join against
   a broadcast of their ids) and turned into sorted 64-bit shingle sets, persisted on disk partitioned by id; each
   pair meets its two sets by moving the source's set once (the destination's is already in place);
5. **components** of the edges (union-find per bounded partition, then large-star / small-star), the keep rule as
   a window, and the removed file's exact Jaccard (where both shingle sets were built) and estimate against its
   keeper.

**One-task steps** (``one_task_steps``): where a step's whole input fits one task's budget -- every signature for
steps 2-3 and the removed files' estimates, every shingle set built for step 4's exact Jaccards -- the step runs in
one task instead: the candidates by the one-process engine's vectorized step (``graph.estimated_candidates``) over
the signatures coalesced into one partition; the pair measures over one partition holding the pairs and their sides
(a union, no join). When the signatures, the shingle sets, the pairs and the edges' union-find all fit one task,
steps 4-5 after the sets are built are one task too (``_one_task_graph``): exact Jaccards, union-find, the keep rule
(``graph.keepers``, the one-process engine's) and the removed files' scores, emitting the edges, the removed files
and a summary of counts. At 32k files the candidate phase went from 3.3 s to 1.4 s, and steps 4-5 from ~3.5 s to
~2.3 s (five jobs to one); larger inputs take the distributed path, which the tests run on the same data.

Nothing is collected to the driver but counts. Per-job cost dominates a Spark job at this scale, so metrics come
from one aggregation per phase; ``benchmarks/RESULTS-near-dedup.md`` has the measurements.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.keep_rule import keep_order
from spark_jobs.near_dedup import kernels
from spark_jobs.near_dedup.budget import MemoryBudget
from spark_jobs.near_dedup.components import connected_components
from spark_jobs.near_dedup.config import NearDedupConfig
from spark_jobs.near_dedup.graph import PAIRS_PER_STEP, estimated_candidates, keepers, set_jaccards
from spark_jobs.near_dedup.outputs import DUPLICATES, KEEP_COLUMNS, SIGNATURES, scheme_tag
from spark_jobs.near_dedup.phases import phase
from spark_jobs.near_dedup.shingles import arrow_var_width, shingle_set_arrays
from spark_jobs.near_dedup.signing import estimate_ceiling, estimate_floor, sign_documents

log = logging.getLogger(__name__)
SIGNED_FIELDS = [T.StructField("num_shingles", T.LongType()), T.StructField("signature", T.BinaryType()),
                 T.StructField("band_keys", T.ArrayType(T.LongType()))]
SETS = "id string, shingles binary"
SHINGLE_DTYPE = np.dtype("<u8")  # a shingle set is stored as its sorted little-endian uint64 hashes
KEEP_ROW_BYTES = 300  # id, repo, path, licence, stars, forks, created: what a signed row carries besides the sketch
BUCKET_ROW_BYTES = 100  # band, key, id, is_index
SET_BYTES_PER_CONTENT_BYTE = 2  # distinct 5-gram shingles x 8 bytes per byte of code (measured ~1.4; upper side)
WORST_SET_BYTES_PER_CONTENT_BYTE = 8  # one token per byte (``a;b;c...``): the largest a set row can be
DEFAULT_ROW_GROUP_BYTES = 128 * 2**20  # Parquet's default parquet.block.size


@dataclass
class SparkDedup:
    kept: DataFrame
    duplicates: DataFrame
    signatures: DataFrame
    drops: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    edges: DataFrame | None = None  # accepted file pairs (src, dst) (benchmarks score them)
    files_in: tuple[int, int] = (0, 0)  # (files, content bytes) of the input
    row_group_bytes: int = 0  # Parquet row groups the outputs are written with (a writer buffers one per task)


# -- Arrow helpers (executor side) -----------------------------------------------------------------------------

def binary_array(data: np.ndarray, offsets: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """An Arrow binary column over ``data`` (uint8) cut at ``offsets`` (rows + 1, int64), without a copy per row."""
    if offsets[-1] >= 2**31:  # batches are bounded far below this; Arrow's binary offsets are 32-bit
        raise ValueError(f"an Arrow batch of {offsets[-1]} bytes exceeds the 2 GiB of a binary column")
    mask = None
    if valid is not None and not valid.all():
        mask = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.binary(), len(offsets) - 1,
                                 [mask, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)])


def _signature_matrix(column: pa.Array, num_perm: int) -> np.ndarray:
    """(rows x num_perm) uint32 view of a non-null signature column."""
    data, _ = arrow_var_width(column)
    return data.view("<u4").reshape(len(column), num_perm)


def _shingle_csr(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 values, offsets in values) of a non-null shingle-set column, zero-copy."""
    data, offsets = arrow_var_width(column)
    return data.view(SHINGLE_DTYPE), offsets // SHINGLE_DTYPE.itemsize


def _byte_bounded(batch: pa.RecordBatch, row_bytes: np.ndarray, most: int) -> Iterator[pa.RecordBatch]:
    """``batch`` cut into consecutive slices of at most ``most`` bytes of rows (a larger row goes alone)."""
    start, total = 0, 0
    for i, size in enumerate(row_bytes.tolist()):
        if total and total + size > most:
            yield batch.slice(start, i - start)
            start, total = i, 0
        total += size
    if start < batch.num_rows:
        yield batch.slice(start)


# -- executor-side functions (pure, one Arrow batch at a time) --------------------------------------------------

def _sign_batches(cfg: NearDedupConfig):
    """content + keep-rule columns -> keep-rule columns + shingle count, signature, band keys (null: too short)."""
    hasher, ngram = cfg.hasher(), cfg.ngram

    def sign(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            signed = sign_documents(batch.column("content"), hasher, ngram)
            n, shingled = batch.num_rows, signed.shingled
            width = 4 * hasher.num_perm
            signatures = binary_array(np.ascontiguousarray(signed.signatures).view(np.uint8).ravel(),
                                      np.arange(n + 1, dtype=np.int64) * width, shingled)
            keys = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * hasher.bands),
                                            pa.array(signed.band_keys.ravel()), mask=pa.array(~shingled))
            yield pa.RecordBatch.from_arrays(
                [batch.column(name) for name in KEEP_COLUMNS]
                + [pa.array(signed.num_shingles, pa.int64()), signatures, keys],
                names=[*KEEP_COLUMNS, *(f.name for f in SIGNED_FIELDS)])
    return sign


def _shingle_set_batches(ngram: int, batch_bytes: int):
    """id, content -> id, sorted distinct 64-bit shingle set; output cut to ``batch_bytes`` (a set can be 8x its
    file)."""
    def sets(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            values, offsets = shingle_set_arrays(batch.column("content"), ngram)
            column = binary_array(values.view(np.uint8), offsets * SHINGLE_DTYPE.itemsize)
            out = pa.RecordBatch.from_arrays([batch.column("id"), column], names=["id", "shingles"])
            yield from _byte_bounded(out, np.diff(offsets) * SHINGLE_DTYPE.itemsize, batch_bytes)
    return sets


def _index_band_keys(cfg: NearDedupConfig):
    hasher = cfg.hasher()

    def keys(batches):
        for batch in batches:
            sigs = _signature_matrix(batch.column("signature"), hasher.num_perm)
            band = pa.ListArray.from_arrays(pa.array(np.arange(batch.num_rows + 1, dtype=np.int32) * hasher.bands),
                                            pa.array(hasher.band_keys(sigs).ravel()))
            yield pa.RecordBatch.from_arrays([*batch.columns, band], names=[*batch.schema.names, "band_keys"])
    return keys


def _estimate_batches(num_perm: int):
    """src, dst, both signatures (and flags) -> the same without signatures, with the MinHash estimate."""
    def estimate(batches):
        for batch in batches:
            est = kernels.agreement(_signature_matrix(batch.column("src_sig"), num_perm),
                                    _signature_matrix(batch.column("dst_sig"), num_perm))
            keep = [name for name in batch.schema.names if not name.endswith("_sig")]
            yield pa.RecordBatch.from_arrays([*(batch.column(k) for k in keep), pa.array(est, pa.float64())],
                                             names=[*keep, "estimated_jaccard"])
    return estimate


def _one_task_candidates(cfg: NearDedupConfig):
    """Every signature row (id, is_index, signature, band_keys) of the job in one task -> the candidate pairs with
    their flags and estimates, by the one-process engine's step (``graph.estimated_candidates``)."""
    num_perm, bands, max_full = cfg.num_perm, cfg.bands, cfg.max_bucket_full_pairs

    def run(batches):
        batches = [b for b in batches if b.num_rows]
        if not batches:
            return
        table = pa.Table.from_batches(batches).sort_by("id")  # rows in id order: a star's centre is its first row
        ids, flags = table.column("id").combine_chunks(), table.column("is_index").combine_chunks()
        signatures = _signature_matrix(table.column("signature").combine_chunks(), num_perm)
        keys = table.column("band_keys").combine_chunks().flatten().to_numpy().reshape(-1, bands)
        src, dst, estimate = estimated_candidates(keys, signatures, flags.to_numpy(zero_copy_only=False), max_full)
        for i in range(0, src.size, PAIRS_PER_STEP):
            a, b = pa.array(src[i : i + PAIRS_PER_STEP]), pa.array(dst[i : i + PAIRS_PER_STEP])
            yield pa.RecordBatch.from_arrays(
                [ids.take(a), ids.take(b), flags.take(a), flags.take(b),
                 pa.array(estimate[i : i + PAIRS_PER_STEP], pa.float64())],
                names=["src", "dst", "src_is_index", "dst_is_index", "estimated_jaccard"])
    return run


ONE_TASK_ROW_FACTOR = 3  # a row in a one-task step: its Arrow row, the sorted or filtered copy, the matrices
PAIR_ROW_BYTES = 200  # src, dst (64-character ids) and the row indices of a pair in a one-task step


MEASURED = {"estimated_jaccard": "signature", "jaccard": "shingles"}  # a one-task measure -> the sides' value


def _fit_one_task(row_bytes: int, budget: MemoryBudget) -> bool:
    """Whether a one-task step over rows of ``row_bytes`` in all (each held ~``ONE_TASK_ROW_FACTOR`` times) fits."""
    return row_bytes * ONE_TASK_ROW_FACTOR <= budget.partition_bytes


def _exact_fits_one_task(set_bytes: int, pairs: int, budget: MemoryBudget) -> bool:
    """Whether the exact step fits one task: the shingle sets built and the pairs to check."""
    return _fit_one_task(set_bytes + pairs * PAIR_ROW_BYTES, budget)


def _one_task_measure(columns: tuple[str, ...], num_perm: int = 0):
    """One task's rows (src, dst, signature, shingles) -> (src, dst, *``columns``): rows with a null dst are sides, a
    signature or a shingle set under its id in src; the others are pairs, measured by the MinHash estimate
    (``estimated_jaccard``) and/or the exact Jaccard (``jaccard``) of their two sides. A pair with a side of the first
    measure missing is dropped (as the distributed path's joins drop it); a later measure is null where a side is
    missing (as a left join leaves it)."""
    def run(batches):
        batches = [b for b in batches if b.num_rows]
        if not batches:
            return
        table = pa.Table.from_batches(batches)
        is_side = pc.is_null(table.column("dst"))
        sides, pairs = table.filter(is_side), table.filter(pc.invert(is_side))
        ends = []
        for column in columns:
            have = sides.filter(pc.is_valid(sides.column(MEASURED[column])))
            ends.append([have.column(MEASURED[column]).combine_chunks(),
                         *(pc.index_in(pairs.column(end), value_set=have.column("src")).fill_null(-1).to_numpy()
                           for end in ("src", "dst"))])
        keep = (ends[0][1] >= 0) & (ends[0][2] >= 0)
        pairs, out = pairs.filter(pa.array(keep)), []
        for column, (values, a, b) in zip(columns, ends, strict=True):
            a, b = a[keep], b[keep]
            found = (a >= 0) & (b >= 0)
            measure = np.full(a.size, np.nan)
            if found.any() and column == "jaccard":
                data, offsets = _shingle_csr(values)
                measure[found] = kernels.indexed_jaccard(data, offsets, a[found], b[found])
            elif found.any():
                measure[found] = kernels.indexed_agreement(_signature_matrix(values, num_perm), a[found], b[found])
            out.append(pa.array(measure, pa.float64(), mask=~found))
        for i in range(0, pairs.num_rows, PAIRS_PER_STEP):
            part = pairs.slice(i, PAIRS_PER_STEP)
            yield pa.RecordBatch.from_arrays(
                [part.column("src").combine_chunks(), part.column("dst").combine_chunks(),
                 *(m[i : i + PAIRS_PER_STEP] for m in out)], names=["src", "dst", *columns])
    return run


def _aligned(frame: DataFrame, layout: dict, **given) -> DataFrame:
    """``frame`` as the columns of ``layout`` (name -> Spark type): each the ``given`` expression, else a typed null
    (the rows of one union of different kinds)."""
    return frame.select(*(given.get(name, F.lit(None)).cast(dtype).alias(name) for name, dtype in layout.items()))


def _in_one_task(pairs: DataFrame, signatures: DataFrame | None = None, sets: DataFrame | None = None,
                 num_perm: int = 0) -> DataFrame:
    """``pairs`` (src, dst) with their MinHash estimates from ``signatures`` (id, signature) and/or their exact
    Jaccards from ``sets`` (id, shingles), all in one task: the pairs and the sides are one union coalesced into one
    partition (no shuffle, no join). Dropped and null as ``_one_task_measure`` says, the first measure given first."""
    layout = {"src": T.StringType(), "dst": T.StringType(), "signature": T.BinaryType(), "shingles": T.BinaryType()}
    union, columns = _aligned(pairs, layout, src=F.col("src"), dst=F.col("dst")), []
    if signatures is not None:
        union = union.unionByName(_aligned(signatures, layout, src=F.col("id"), signature=F.col("signature")))
        columns.append("estimated_jaccard")
    if sets is not None:
        union = union.unionByName(_aligned(sets, layout, src=F.col("id"), shingles=F.col("shingles")))
        columns.append("jaccard")
    return union.coalesce(1).mapInArrow(_one_task_measure(tuple(columns), num_perm),
                                        ", ".join(["src string", "dst string", *(f"{c} double" for c in columns)]))


GRAPH_OUT = "kind string, src string, dst string, jaccard double, estimated_jaccard double"


def _one_task_graph(cfg: NearDedupConfig):
    """Every row the rest of the job needs, in one task -> its edges, its removed files and a summary.

    Input rows by ``kind``: ``node`` (a live file or index entry: id in src, its signature in value, is_index and
    the keep-rule columns), ``set`` (id in src, its shingle set in value), ``check`` (a pair to verify exactly) and
    ``edge`` (a pair accepted on its estimate). As the one-process engine does it: the check pairs whose exact
    Jaccard reaches the threshold join the edges (a pair with a set missing is dropped, as a join drops it), the
    keep rule runs over the components (``graph.keepers``), and each removed file is scored against its keeper
    (estimate; exact where both sets exist, else null). Output rows: ``edge`` (src, dst), ``dup`` (removed file in
    src, keeper in dst, jaccard, estimated_jaccard) and one ``summary`` (JSON counts in src)."""
    num_perm, threshold = cfg.num_perm, cfg.threshold

    def rows(kind: str, src: pa.Array, dst: pa.Array, jaccard: np.ndarray, estimate: np.ndarray):
        for i in range(0, len(src), PAIRS_PER_STEP):
            j, e = jaccard[i : i + PAIRS_PER_STEP], estimate[i : i + PAIRS_PER_STEP]
            yield pa.RecordBatch.from_arrays(
                [pa.array([kind] * len(j), pa.string()), src.slice(i, PAIRS_PER_STEP), dst.slice(i, PAIRS_PER_STEP),
                 pa.array(j, pa.float64(), mask=np.isnan(j)), pa.array(e, pa.float64(), mask=np.isnan(e))],
                names=["kind", "src", "dst", "jaccard", "estimated_jaccard"])

    def summary(**counts):
        return rows("summary", pa.array([json.dumps(counts)]), pa.array([None], pa.string()), np.full(1, np.nan),
                    np.full(1, np.nan))

    def run(batches):
        batches = [b for b in batches if b.num_rows]
        if not batches:
            yield from summary(verified_pairs=0, components=0, largest_component=0, file_duplicates=0,
                               removed_below_threshold_to_keeper=0)
            return
        table = pa.Table.from_batches(batches)
        kind = table.column("kind")
        nodes = table.filter(pc.equal(kind, "node")).sort_by("src")  # node numbers in id order, as the local engine
        sets = table.filter(pc.equal(kind, "set"))
        pairs = table.filter(pc.is_in(kind, value_set=pa.array(["check", "edge"])))
        names = nodes.column("src").combine_chunks()
        is_index = nodes.column("is_index").to_numpy(zero_copy_only=False).astype(bool)
        a, b = (pc.index_in(pairs.column(end), value_set=names).fill_null(-1).to_numpy() for end in ("src", "dst"))
        set_of = pc.index_in(names, value_set=sets.column("src")).fill_null(-1).to_numpy()
        set_of = np.append(set_of, -1)  # a pair end missing from the nodes (-1) has no set either
        data, offsets = _shingle_csr(sets.column("value").combine_chunks())
        check = pc.equal(pairs.column("kind"), "check").to_numpy(zero_copy_only=False).astype(bool)
        exact = np.full(a.size, np.nan)
        exact[check] = set_jaccards(data, offsets, set_of, a[check], b[check])
        accepted = (a >= 0) & (b >= 0) & (~check | (exact >= threshold))
        edges = list(zip(a[accepted].tolist(), b[accepted].tolist(), strict=True))
        others = [c for c in KEEP_COLUMNS if c != "id"]
        attrs = nodes.select(["src", *others]).rename_columns(["id", *others])  # keep-rule records
        removed, keeper, sizes = keepers(edges, is_index, lambda found: dict(zip(
            found, attrs.take(pa.array(found, pa.int64())).to_pylist(), strict=True)))
        estimate = kernels.indexed_agreement(_signature_matrix(nodes.column("value").combine_chunks(), num_perm),
                                             removed, keeper)
        kept_exact = set_jaccards(data, offsets, set_of, removed, keeper)
        done = pa.array(accepted)
        yield from rows("edge", pairs.column("src").filter(done).combine_chunks(),
                        pairs.column("dst").filter(done).combine_chunks(),
                        np.full(len(edges), np.nan), np.full(len(edges), np.nan))
        yield from rows("dup", names.take(pa.array(removed)), names.take(pa.array(keeper)), kept_exact, estimate)
        yield from summary(verified_pairs=len(edges), components=len(sizes), largest_component=max(sizes, default=0),
                           file_duplicates=int(removed.size),
                           removed_below_threshold_to_keeper=int((kept_exact < threshold).sum()))
    return run


def _graph_in_one_task(nodes: DataFrame, sets: DataFrame, checks: DataFrame, accepted: DataFrame,
                       cfg: NearDedupConfig) -> DataFrame:
    """``_one_task_graph`` over ``nodes`` (KEEP_COLUMNS, is_index, signature), ``sets`` (id, shingles), the pairs
    to verify (``checks``) and the pairs accepted on their estimates (``accepted``), unioned into one partition."""
    attrs = {f.name: f.dataType for f in nodes.schema.fields if f.name in KEEP_COLUMNS and f.name != "id"}
    columns = {"kind": T.StringType(), "src": T.StringType(), "dst": T.StringType(), "value": T.BinaryType(),
               "is_index": T.BooleanType(), **attrs}

    def rows(frame: DataFrame, kind: str, **given) -> DataFrame:
        return _aligned(frame, columns, kind=F.lit(kind), **given)

    union = rows(nodes, "node", src=F.col("id"), value=F.col("signature"), is_index=F.col("is_index"),
                 **{name: F.col(name) for name in attrs})
    union = union.unionByName(rows(sets, "set", src=F.col("id"), value=F.col("shingles")))
    union = union.unionByName(rows(checks, "check", src=F.col("src"), dst=F.col("dst")))
    union = union.unionByName(rows(accepted, "edge", src=F.col("src"), dst=F.col("dst")))
    return union.coalesce(1).mapInArrow(_one_task_graph(cfg), GRAPH_OUT)


def _exact_batches(batches):
    """src, dst, both shingle sets -> src, dst, exact Jaccard."""
    for batch in batches:
        values_a, offsets_a = _shingle_csr(batch.column("src_shingles"))
        values_b, offsets_b = _shingle_csr(batch.column("dst_shingles"))
        exact = kernels.pair_jaccard(values_a, offsets_a, values_b, offsets_b)
        yield pa.RecordBatch.from_arrays([batch.column("src"), batch.column("dst"), pa.array(exact, pa.float64())],
                                         names=["src", "dst", "jaccard"])


def _repo_signature_batches(cfg: NearDedupConfig):
    """(repo, signature) rows sorted by repo -> one (repo, element-wise minimum signature, band keys) per repo.

    A repository's MinHash is the minimum of its files' signatures (the MinHash of the union of their shingles). The
    rows of a repository may run over batches: its partial minimum is carried to the next batch."""
    hasher = cfg.hasher()

    def emit(repos: list, sigs: np.ndarray) -> pa.RecordBatch:
        n = len(repos)
        keys = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * hasher.bands),
                                        pa.array(hasher.band_keys(sigs).ravel()))
        signature = binary_array(np.ascontiguousarray(sigs).view(np.uint8).ravel(),
                                 np.arange(n + 1, dtype=np.int64) * 4 * hasher.num_perm)
        return pa.RecordBatch.from_arrays([pa.array(repos, pa.string()), signature, keys],
                                          names=["repo", "signature", "band_keys"])

    def reduce(batches):
        carried: tuple[str, np.ndarray] | None = None
        for batch in batches:
            if not batch.num_rows:
                continue
            repos = batch.column("repo").to_pylist()
            sigs = _signature_matrix(batch.column("signature"), hasher.num_perm)
            starts = [0] + [i for i in range(1, len(repos)) if repos[i] != repos[i - 1]]
            minima = np.minimum.reduceat(sigs, starts, axis=0)
            names = [repos[i] for i in starts]
            if carried is not None:
                if carried[0] == names[0]:
                    minima[0] = np.minimum(minima[0], carried[1])
                else:
                    yield emit([carried[0]], carried[1][None, :])
            carried = (names[-1], minima[-1].copy())
            if len(names) > 1:
                yield emit(names[:-1], minima[:-1])
        if carried is not None:
            yield emit([carried[0]], carried[1][None, :])
    return reduce


# -- plan ------------------------------------------------------------------------------------------------------

def bucket_pairs(frame: DataFrame, max_full_pairs: int, budget: MemoryBudget, rows: int | None = None,
                 distinct: bool = True) -> DataFrame:
    """(src, dst) pairs of the files of ``frame`` (id, band_keys[, is_index]) sharing a bucket (a band key at the
    same band position), src < dst, distinct (unless ``distinct`` is false: the caller deduplicates them with its
    own shuffle).

    The bucket rows (band, key, id, is_index) never become Spark rows: each Python worker packs the rows of its
    batch bound for one bucket partition into one Arrow IPC blob, so the shuffle moves a few blobs per batch instead
    of one JVM row per file and band (25 per file; the JVM's per-row cost was most of this phase). Each bucket
    partition, sized by ``budget`` to fit a task's memory, is unpacked, sorted by (band, key, id) and walked with
    numpy: per bucket of n > 1 files all its pairs when n <= ``max_full_pairs``, else a star on its smallest id (a
    bucket of n boilerplate files costs n - 1 pairs); a bucket running over steps is carried (a star by its centre
    only). Pairs of two index files are skipped (their snapshot already deduplicated them). ``rows``: how many
    bucket rows there are (or an upper bound), to size the partitions; counted when not given.
    """
    if "is_index" not in frame.columns:
        frame = frame.withColumn("is_index", F.lit(False))
    if rows is None:
        rows = frame.select(F.size("band_keys").alias("n")).agg(F.sum("n")).first()[0] or 0
    parallelism = frame.sparkSession.sparkContext.defaultParallelism
    parts = partition_values(budget.partitions(PACKED_ROW_OVERHEAD * rows * BUCKET_ROW_BYTES, at_least=parallelism))
    packed = (frame.select("id", F.col("is_index").cast("boolean").alias("is_index"), "band_keys")
              .mapInArrow(_pack_bucket_rows(parts), PACKED)
              .repartition(len(parts), "part"))
    pairs = packed.mapInArrow(_packed_bucket_pairs(max_full_pairs, budget.rows(BUCKET_ROW_BYTES)),
                              "src string, dst string")
    return pairs.distinct() if distinct else pairs


PACKED = "part int, rows binary"
PACKED_ROW_OVERHEAD = 3  # a partition's rows in Python: the blobs, their concatenation and the sorted copy


def spark_hash_int(value: int, seed: int = 42) -> int:
    """Spark's ``hash()`` of an int column's value (Murmur3 x86 32-bit, ``hashInt``), as a signed 32-bit int.

    >>> spark_hash_int(0), spark_hash_int(1)
    (933211791, -559580957)
    """
    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF

    k1 = rotl((value & 0xFFFFFFFF) * 0xCC9E2D51 & 0xFFFFFFFF, 15) * 0x1B873593 & 0xFFFFFFFF
    h1 = (rotl(seed ^ k1, 13) * 5 + 0xE6546B64) & 0xFFFFFFFF
    h1 ^= 4
    h1 = (h1 ^ (h1 >> 16)) * 0x85EBCA6B & 0xFFFFFFFF
    h1 = (h1 ^ (h1 >> 13)) * 0xC2B2AE35 & 0xFFFFFFFF
    h1 ^= h1 >> 16
    return h1 - (1 << 32) if h1 >= 1 << 31 else h1


def partition_values(partitions: int) -> list[int]:
    """For each partition j < ``partitions``, the smallest int that ``repartition(partitions, col)`` sends to j.

    Hash partitioning sends value v to pmod(hash(v), partitions); P arbitrary values would leave some partitions
    empty and give others two shares, so each share is labelled with a value chosen to land in its own partition.
    """
    values: list[int | None] = [None] * partitions
    v, found = 0, 0
    while found < partitions:
        j = spark_hash_int(v) % partitions
        if values[j] is None:
            values[j], found = v, found + 1
        v += 1
    return values  # type: ignore[return-value]


def _pack_bucket_rows(parts: list[int]):
    """id, is_index, band_keys -> (part, Arrow IPC blob of the (band, key, id, is_index) rows bound for it)."""
    schema = pa.schema([("band", pa.int32()), ("key", pa.int64()), ("id", pa.string()), ("is_index", pa.bool_())])

    def pack(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            lists = batch.column("band_keys")
            if not batch.num_rows:
                continue
            lengths = lists.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            key = lists.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
            row = np.repeat(np.arange(batch.num_rows), lengths)
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            band = (np.arange(key.size) - np.repeat(starts, lengths)).astype(np.int32)
            # Band keys are already 64-bit hashes: their low bits pick the partition.
            target = (key.view(np.uint64) % np.uint64(len(parts))).astype(np.int64)
            order = np.argsort(target, kind="stable")
            bounds = np.searchsorted(target[order], np.arange(len(parts) + 1))
            ids, index = batch.column("id"), batch.column("is_index")
            labels, blobs = [], []
            for j in range(len(parts)):
                chosen = order[bounds[j] : bounds[j + 1]]
                if not chosen.size:
                    continue
                take = pa.array(row[chosen])
                table = pa.Table.from_arrays([pa.array(band[chosen]), pa.array(key[chosen]), ids.take(take),
                                              index.take(take)], schema=schema)
                sink = pa.BufferOutputStream()
                with pa.ipc.new_stream(sink, schema) as writer:
                    writer.write_table(table)
                labels.append(parts[j])
                blobs.append(sink.getvalue())
            if not blobs:  # every list of the batch empty
                continue
            data = [np.frombuffer(blob, dtype=np.uint8) for blob in blobs]
            offsets = np.concatenate(([0], np.cumsum([d.size for d in data]))).astype(np.int64)
            yield pa.RecordBatch.from_arrays([pa.array(labels, pa.int32()),
                                              binary_array(np.concatenate(data), offsets)], names=["part", "rows"])
    return pack


def _packed_bucket_pairs(max_full_pairs: int, rows_per_step: int):
    """The blobs of one bucket partition -> its (src, dst) pairs (``_bucket_pair_batches`` over the sorted rows)."""
    walk = _bucket_pair_batches(max_full_pairs, rows_per_step)

    def pairs(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        tables = [pa.ipc.open_stream(blobs[i].as_buffer()).read_all()
                  for blobs in (batch.column("rows") for batch in batches) for i in range(len(blobs))]
        if not tables:
            return
        table = pa.concat_tables(tables)
        del tables
        order = pc.sort_indices(table, sort_keys=[("band", "ascending"), ("key", "ascending"), ("id", "ascending")])
        table = table.take(order)
        yield from walk(iter(table.to_batches(max_chunksize=rows_per_step)))
    return pairs


def _bucket_pair_batches(max_full_pairs: int, rows_per_step: int):
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


def _join_sides(pairs: DataFrame, sides: DataFrame, values: list[str], partitions: int, distinct: bool = False
                ) -> DataFrame:
    """``pairs`` (src, dst) with ``sides``' ``values`` columns of both ends, as ``src_<value>``, ``dst_<value>``.

    ``sides`` is partitioned by id into ``partitions``: the pairs are shuffled to their source's partition, and the
    joined rows (now carrying the source's values) to their destination's, so each pair moves one side, never two.
    ``distinct``: duplicate pairs are dropped in the source's partition (a pair's copies meet there), so the
    deduplication costs no shuffle of its own.
    """
    def side(prefix: str) -> DataFrame:
        return sides.select(F.col("id").alias(prefix), *(F.col(v).alias(f"{prefix}_{v}") for v in values))

    by_src = pairs.repartition(partitions, "src")
    with_src = (by_src.distinct() if distinct else by_src).join(side("src"), "src")
    return with_src.repartition(partitions, "dst").join(side("dst"), "dst")


def _estimates(pairs: DataFrame, signed: DataFrame, cfg: NearDedupConfig, partitions: int,
               flags: tuple[str, ...] = (), distinct: bool = False, one_task: bool = False) -> DataFrame:
    """(src, dst, [src_<flag>, dst_<flag> ...], estimated_jaccard) of ``pairs`` (deduplicated first if
    ``distinct``), with ``signed``'s signatures; ``one_task``: every signature fits one task (no flags, no
    duplicates)."""
    if one_task and not flags and not distinct:
        return _in_one_task(pairs, signatures=signed, num_perm=cfg.num_perm)
    joined = _join_sides(pairs.select("src", "dst"), signed.withColumnRenamed("signature", "sig"),
                         ["sig", *flags], partitions, distinct)
    out = ["src", "dst", *(f"{end}_{flag}" for flag in flags for end in ("src", "dst"))]
    return joined.select(*out, "src_sig", "dst_sig").mapInArrow(_estimate_batches(cfg.num_perm), T.StructType(
        [joined.schema[name] for name in out] + [T.StructField("estimated_jaccard", T.DoubleType())]))


def _exact(pairs: DataFrame, sets: DataFrame, partitions: int, one_task: bool = False) -> DataFrame:
    if one_task:
        return _in_one_task(pairs, sets=sets)
    joined = _join_sides(pairs.select("src", "dst"), sets, ["shingles"], partitions)
    return joined.select("src", "dst", "src_shingles", "dst_shingles").mapInArrow(
        _exact_batches, "src string, dst string, jaccard double")


def _keepers(components: DataFrame, attrs: DataFrame) -> DataFrame:
    """(id, keeper) for every member of every component: the first by (index first, keep rule)."""
    ranked = components.join(attrs, components.node == attrs.id)
    window = Window.partitionBy("component").orderBy(F.col("is_index").desc(), *keep_order())
    return ranked.select("id", "is_index", F.first("id").over(window).alias("keeper"))


def _persist(df: DataFrame) -> DataFrame:
    return df.persist(StorageLevel.MEMORY_AND_DISK)


def _persist_sets(df: DataFrame) -> DataFrame:
    """Shingle sets are persisted on disk only: a partition read back from disk is streamed batch by batch, while
    a ``MEMORY_AND_DISK`` block that spilled is read back into memory whole (two tasks doing so at once were the
    suspect of the 8x held-out run's heap exhaustion before; it has not recurred since: notes/issue-19.md)."""
    return df.persist(StorageLevel.DISK_ONLY)


def configure(spark, budget: MemoryBudget, largest_file: int, signed_row_bytes: int, largest_cached_row: int) -> None:
    """Byte-bounded batches for this job: Arrow batches to Python workers, Parquet reader batches of content, and
    in-memory cache batches (Spark reads the cache's batch size when a cache is built, so one value, sized for
    the largest persisted rows, serves every cache of the job)."""
    conf = spark.conf
    conf.set("spark.sql.execution.arrow.maxBytesPerBatch", str(budget.input_batch_bytes))
    # Few-byte files would otherwise make output batches (a signature per file) many times their input.
    conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(budget.rows(signed_row_bytes, most=10_000)))
    conf.set("spark.sql.parquet.columnarReaderBatchSize", str(budget.rows(largest_file, most=4096)))
    conf.set("spark.sql.inMemoryColumnarStorage.batchSize", str(budget.rows(largest_cached_row, most=10_000)))


def dedup_frames(files: DataFrame, cfg: NearDedupConfig, *, snapshot: str, index: DataFrame | None = None
                 ) -> SparkDedup:
    """Plan and run near dedup of one snapshot's FILES DataFrame; outputs are persisted DataFrames."""
    hasher = cfg.hasher()
    spark = files.sparkSession
    budget = MemoryBudget(cfg.task_memory_bytes) if cfg.task_memory_bytes else MemoryBudget.from_conf(spark.conf.get)
    parallelism = spark.sparkContext.defaultParallelism
    metrics: dict = {"s_curve": hasher.s_curve(), "engine": "spark"}
    drops = {"near_duplicate_repo": 0, "near_duplicate_file": 0}

    sizes = files.agg(F.count("*"), F.sum("size_bytes"), F.max("size_bytes")).first()
    total_files, total_bytes, largest = int(sizes[0]), int(sizes[1] or 0), int(sizes[2] or 0)
    signed_row_bytes = KEEP_ROW_BYTES + 4 * hasher.num_perm + 8 * hasher.bands
    largest_set = largest * WORST_SET_BYTES_PER_CONTENT_BYTE if cfg.verify else 0
    configure(spark, budget, largest, signed_row_bytes, max(signed_row_bytes, largest_set))
    partitions = budget.partitions(total_files * signed_row_bytes, at_least=parallelism)  # of the signatures
    log.info("near dedup: %d files, %.1f MB, largest %d bytes; task memory %d MB: Arrow batches of %d MB, "
             "%d signature partitions", total_files, total_bytes / 1e6, largest, budget.task_bytes >> 20,
             budget.batch_bytes >> 20, partitions)

    metrics["index_files"] = index_files = index.count() if index is not None else 0
    # Every signature fits one task even if no file is too short to shingle: the candidates and measures will run
    # in one task (below), so the signatures need no partitioning by id for the joins of the distributed path.
    surely_one_task = cfg.one_task_steps and _fit_one_task((total_files + index_files) * signed_row_bytes, budget)

    # Persisted (partitioned by id for the distributed path's joins): the only pass over the content until
    # verification; every step below reads it.
    keep_schema = files.select(*KEEP_COLUMNS).schema
    signed = (files.select(*KEEP_COLUMNS, "content")
              .mapInArrow(_sign_batches(cfg), T.StructType([*keep_schema.fields, *SIGNED_FIELDS])))
    signed = _persist(signed if surely_one_task else signed.repartition(partitions, "id"))
    with phase(log, "signatures"):
        counts = signed.agg(F.count("*"), F.count(F.when(F.col("band_keys").isNull(), 1))).first()
    metrics["too_short_to_shingle"] = int(counts[1])
    shingled_files = int(counts[0] - counts[1])
    log.info("near dedup: %d files signed, %d too short to shingle", counts[0], counts[1])
    live = signed.where(F.col("band_keys").isNotNull()).withColumn("is_index", F.lit(False))

    duplicates = []
    removed_repos = None
    if cfg.repo_level:
        with phase(log, "repository level"):
            removed_repos, repo_dups = _repo_level(signed, live, cfg, metrics, budget, partitions,
                                                   shingled_files * hasher.bands)
            duplicates.append(repo_dups)
            drops["near_duplicate_repo"] = signed.join(removed_repos, "repo", "left_semi").count()
        live = live.join(removed_repos, "repo", "left_anti")
    live = live.select(*KEEP_COLUMNS, "is_index", "signature", "band_keys")

    if index is not None:
        indexed = (index.withColumn("id", F.concat_ws("@", "id", "snapshot"))
                   .select(*KEEP_COLUMNS, "signature")
                   .mapInArrow(_index_band_keys(cfg), T.StructType(
                       [*index.select(*KEEP_COLUMNS, "signature").schema.fields,
                        T.StructField("band_keys", T.ArrayType(T.LongType()))])))
        live = live.unionByName(indexed.select(*KEEP_COLUMNS, F.lit(True).alias("is_index"), "signature",
                                               "band_keys"))

    with phase(log, "candidate pairs and estimates"):
        nodes = shingled_files + index_files
        metrics["candidates_in_one_task"] = one_task = (
            cfg.one_task_steps and _fit_one_task(nodes * signed_row_bytes, budget))
        if one_task:  # every signature fits one task: no bucket shuffle, no joins
            estimated = live.select("id", "is_index", "signature", "band_keys").coalesce(1).mapInArrow(
                _one_task_candidates(cfg), "src string, dst string, src_is_index boolean, dst_is_index boolean, "
                                           "estimated_jaccard double")
        else:
            pairs = bucket_pairs(live, cfg.max_bucket_full_pairs, budget, rows=nodes * hasher.bands, distinct=False)
            estimated = _estimates(pairs, live, cfg, partitions, flags=("is_index",), distinct=True)
        estimated = _persist(estimated)  # split three ways below, counted once
        floor = estimate_floor(cfg.num_perm, cfg.threshold, cfg.estimate_reject_error) if cfg.verify else -1.0
        ceiling = estimate_ceiling(cfg.num_perm, cfg.threshold, cfg.estimate_accept_error) if cfg.verify else 2.0
        by_index = F.col("src_is_index") | F.col("dst_is_index")
        plausible = ~by_index & (F.col("estimated_jaccard") > floor)
        sure = plausible & (F.col("estimated_jaccard") >= ceiling)
        counts = estimated.agg(F.count("*"), F.count(F.when(plausible, 1)), F.count(F.when(by_index, 1)),
                               F.count(F.when(by_index & (F.col("estimated_jaccard") >= cfg.threshold), 1)),
                               F.count(F.when(sure, 1))).first()
    metrics["candidate_pairs"] = int(counts[0])
    metrics["rejected_by_estimate"] = int(counts[0] - counts[1] - counts[2]) if cfg.verify else 0
    metrics["accepted_by_estimate"] = int(counts[4]) if cfg.verify else 0
    to_check = int(counts[1] - counts[4])
    log.info("near dedup: %d candidate pairs, %d rejected by their estimate (<= %.3f), %d accepted by it (>= %.3f), "
             "%d to verify exactly", counts[0], metrics["rejected_by_estimate"], floor,
             metrics["accepted_by_estimate"], ceiling, to_check)

    index_edges = estimated.where(by_index & (F.col("estimated_jaccard") >= cfg.threshold)).select("src", "dst")
    involved_bytes = min(total_bytes, 2 * to_check * total_bytes // max(total_files, 1))
    set_partitions = budget.partitions(involved_bytes * SET_BYTES_PER_CONTENT_BYTE, at_least=parallelism)
    if cfg.verify:
        with phase(log, "shingle sets"):
            to_verify = estimated.where(plausible & ~sure).select("src", "dst")
            involved = to_verify.select(F.col("src").alias("id")).unionByName(
                to_verify.select(F.col("dst").alias("id"))).distinct()
            if 2 * to_check * KEEP_ROW_BYTES <= budget.partition_bytes:  # the ids fit every task: broadcast them
                involved = F.broadcast(involved)
            sets = (files.select("id", "content").join(involved, "id", "left_semi")
                    .mapInArrow(_shingle_set_batches(cfg.ngram, budget.batch_bytes), SETS))
            sets_one_task = False
            if one_task:  # the signatures fit one task: see whether the sets do (measuring them builds them)
                built = _persist_sets(sets)  # as read: a one-task step needs no partitioning by id
                set_bytes = int(built.agg(F.sum(F.length("shingles"))).first()[0] or 0)
                sets_one_task = _exact_fits_one_task(set_bytes, to_check, budget)
                sets = built
            if not sets_one_task:  # for the joins: partitioned by id (each pair moves one side)
                sets = _persist_sets(sets.repartition(set_partitions, "id"))
            metrics["exact_in_one_task"] = sets_one_task
            # The rest of the graph in the same task too: the signatures, sets and pairs fit, and so do the edges'
            # union-find (at most every pair to check, plus those accepted on their estimates).
            edge_bound = to_check + int(counts[3]) + metrics["accepted_by_estimate"]
            graph_one_task = sets_one_task and edge_bound <= budget.union_find_edges and _fit_one_task(
                nodes * signed_row_bytes + set_bytes + (to_check + edge_bound) * PAIR_ROW_BYTES, budget)
        if not graph_one_task:
            with phase(log, "exact verification"):
                exact = _persist(_exact(to_verify, sets, set_partitions, sets_one_task))
                verified = exact.where(F.col("jaccard") >= cfg.threshold).select("src", "dst")
                metrics["verified_pairs"] = verified.count() + int(counts[3]) + metrics["accepted_by_estimate"]
            edges = verified.unionByName(estimated.where(sure).select("src", "dst")).unionByName(index_edges)
    else:
        sets, sets_one_task, graph_one_task = None, False, False
        edges = estimated.select("src", "dst")
        metrics["verified_pairs"] = int(counts[0])
    metrics["graph_in_one_task"] = graph_one_task

    if graph_one_task:
        with phase(log, "verification, components and keep rule in one task"):
            graph = _persist(_graph_in_one_task(
                live, sets, to_verify, estimated.where(sure).select("src", "dst").unionByName(index_edges), cfg))
            row = graph.where(F.col("kind") == "summary").select("src").first()
        summary = json.loads(row[0])
        edges = graph.where(F.col("kind") == "edge").select("src", "dst")
        file_dups = graph.where(F.col("kind") == "dup").select(
            F.col("src").alias("removed_id"), F.col("dst").alias("kept_id"), F.lit("file").alias("level"),
            "jaccard", "estimated_jaccard")
        metrics["cc_rounds"] = 0
        for name in ("verified_pairs", "components", "largest_component", "removed_below_threshold_to_keeper"):
            metrics[name] = summary[name]
        drops["near_duplicate_file"] = summary["file_duplicates"]
        log.info("near dedup: %d edges", metrics["verified_pairs"])
    else:
        edges = _persist(edges)
        log.info("near dedup: %d edges", metrics["verified_pairs"])
        file_dups = _graph_in_steps(edges, live, sets, sets_one_task, set_partitions, one_task, partitions, cfg,
                                    budget, metrics, drops)
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
    return SparkDedup(kept, all_dups, signature_rows, drops, metrics, edges, (total_files, total_bytes),
                      min(DEFAULT_ROW_GROUP_BYTES, budget.partition_bytes))


def _graph_in_steps(edges: DataFrame, live: DataFrame, sets: DataFrame | None, sets_one_task: bool,
                    set_partitions: int, one_task: bool, partitions: int, cfg: NearDedupConfig, budget: MemoryBudget,
                    metrics: dict, drops: dict) -> DataFrame:
    """Connected components of the accepted ``edges`` (distributed), the keep rule and the removed files' scores:
    the removed files' rows (persisted), with their counts in ``metrics`` and ``drops``."""
    with phase(log, "connected components"):
        comps, rounds = connected_components(edges, max_iterations=cfg.max_cc_iterations,
                                             num_edges=metrics["verified_pairs"],
                                             max_local_edges=budget.union_find_edges)
        sizes = comps.groupBy("component").count().agg(F.count("*"), F.max("count")).first()
    metrics["cc_rounds"] = rounds
    metrics["components"], metrics["largest_component"] = int(sizes[0]), int(sizes[1] or 0)
    keeper_rows = _keepers(comps, live.select(*KEEP_COLUMNS, "is_index"))
    removed = keeper_rows.where(~F.col("is_index") & (F.col("id") != F.col("keeper"))).select(
        F.col("id").alias("src"), F.col("keeper").alias("dst"))
    # Exact where both files' shingle sets were built (the local engine's rule), else null.
    if sets is not None and sets_one_task:  # both measures in one task
        scored = _in_one_task(removed, signatures=live, sets=sets, num_perm=cfg.num_perm)
    elif sets is not None:
        scored = _estimates(removed, live, cfg, partitions, one_task=one_task).join(
            _exact(removed, sets, set_partitions), ["src", "dst"], "left")
    else:
        scored = _estimates(removed, live, cfg, partitions, one_task=one_task).withColumn(
            "jaccard", F.lit(None).cast("double"))
    file_dups = _persist(  # Persisted: counted, then written, then the anti-join key of the kept files.
        scored.select(F.col("src").alias("removed_id"), F.col("dst").alias("kept_id"), F.lit("file").alias("level"),
                      "jaccard", "estimated_jaccard"))
    with phase(log, "keep rule"):
        counts = file_dups.agg(F.count("*"), F.count(F.when(F.col("jaccard") < cfg.threshold, 1))).first()
    drops["near_duplicate_file"], metrics["removed_below_threshold_to_keeper"] = int(counts[0]), int(counts[1])
    return file_dups


def _repo_level(signed: DataFrame, live: DataFrame, cfg: NearDedupConfig, metrics: dict, budget: MemoryBudget,
                partitions: int, bucket_rows: int):
    """Repositories whose MinHash estimates a Jaccard >= ``repo_threshold``: (removed repository ids, their
    duplicate rows). ``bucket_rows``: an upper bound of the repositories' bucket rows (files x bands)."""
    repo_sigs = _persist(  # Persisted: read 3 times.
        live.select("repo", "signature").repartition(partitions, "repo").sortWithinPartitions("repo")
        .mapInArrow(_repo_signature_batches(cfg), "repo string, signature binary, band_keys array<long>")
        .withColumnRenamed("repo", "id"))
    pairs = bucket_pairs(repo_sigs, cfg.max_bucket_full_pairs, budget, rows=bucket_rows, distinct=False)
    scored = _persist(_estimates(pairs, repo_sigs, cfg, partitions, distinct=True))
    counts = scored.agg(F.count("*"), F.count(F.when(F.col("estimated_jaccard") >= cfg.repo_threshold, 1))).first()
    metrics["repo_candidate_pairs"], metrics["repo_verified_pairs"] = int(counts[0]), int(counts[1])
    edges = scored.where(F.col("estimated_jaccard") >= cfg.repo_threshold).select("src", "dst")
    comps, _ = connected_components(edges, max_iterations=cfg.max_cc_iterations,
                                    num_edges=metrics["repo_verified_pairs"], max_local_edges=budget.union_find_edges)
    repo_attrs = signed.groupBy("repo").agg(F.min("stars").alias("stars"), F.min("forks").alias("forks"),
                                            F.min("license").alias("license"),
                                            F.min("repo_created_at").alias("repo_created_at"))
    repo_attrs = repo_attrs.select(F.col("repo").alias("id"), "repo", F.lit("").alias("path"), "license", "stars",
                                   "forks", "repo_created_at", F.lit(False).alias("is_index"))
    removed = _keepers(comps, repo_attrs).where(F.col("id") != F.col("keeper"))
    dups = _persist(  # Persisted: counted, written, and the anti-join key of the removed repositories.
        _estimates(removed.select(F.col("id").alias("src"), F.col("keeper").alias("dst")), repo_sigs, cfg,
                   partitions)
        .select(F.col("src").alias("removed_id"), F.col("dst").alias("kept_id"), F.lit("repo").alias("level"),
                F.lit(None).cast("double").alias("jaccard"), "estimated_jaccard"))
    metrics["repos_removed"] = dups.count()
    return dups.select(F.col("removed_id").alias("repo")), dups


def _spark_type(arrow_type) -> str:
    return {pa.string(): "string", pa.float64(): "double"}[arrow_type]
