"""Near dedup in one process: the reference the Spark job must agree with, and the engine for small snapshots.

Same rules as the Spark job (shingling, signatures, band keys, bucket pairs, the estimate floor, exact
verification, keep rule) on numpy arrays indexed by the files' rank in id order, with the compiled kernels signing
byte-bounded batches on ``local_threads`` threads. The content stays in its Arrow buffers: no Python string per file.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spark_jobs.keep_rule import keep_key
from spark_jobs.near_dedup import kernels
from spark_jobs.near_dedup.budget import MemoryBudget
from spark_jobs.near_dedup.config import NearDedupConfig
from spark_jobs.near_dedup.graph import (
    band_pairs,
    connected_components,
    estimated_candidates,
    keepers,
    set_jaccards,
)
from spark_jobs.near_dedup.minhash import signature_from_bytes
from spark_jobs.near_dedup.outputs import DUPLICATES, KEEP_COLUMNS, SIGNATURES, scheme_tag
from spark_jobs.near_dedup.phases import phase
from spark_jobs.near_dedup.shingles import arrow_var_width, shingle_set_arrays
from spark_jobs.near_dedup.signing import estimate_ceiling, estimate_floor, sign_documents

log = logging.getLogger(__name__)
LOCAL_TASK_BYTES = 2**30  # the local engine's budget when task_memory_bytes is not set
BATCH_BYTES = 8 * 2**20  # content signed per kernel call (small enough to keep every thread busy)
STRING_BYTES = 2**31 - 1  # the most bytes one Arrow ``string`` array holds (32-bit offsets)


@dataclass
class DedupResult:
    kept: pa.Table
    duplicates: pa.Table
    signatures: pa.Table
    drops: Counter = field(default_factory=Counter)
    metrics: dict = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)  # accepted file pairs (benchmarks score them)


def index_node(file_id: str, snapshot: str) -> str:
    """An index file's node in the graph: ``id@snapshot`` (an unchanged file keeps its id across snapshots)."""
    return f"{file_id}@{snapshot}"


def repo_record(files_of_repo: list[dict], repo: str) -> dict:
    """The keep-rule view of a repository: its (repository-wide) popularity fields, named by the repository."""
    return {"repo": repo, "path": "", "id": repo,
            "stars": min(r["stars"] for r in files_of_repo), "forks": min(r["forks"] for r in files_of_repo),
            "license": min((r["license"] for r in files_of_repo if r["license"] is not None), default=None),
            "repo_created_at": min((r["repo_created_at"] for r in files_of_repo if r["repo_created_at"]),
                                   default=None)}


def value_lengths(column: pa.ChunkedArray) -> np.ndarray:
    """Bytes of every value of a string column (int64), from its offsets."""
    parts = [np.diff(arrow_var_width(chunk)[1]) for chunk in column.chunks]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _widened(files: pa.Table) -> tuple[pa.Table, bool]:
    """``files`` with its content as ``large_string`` when the column holds more than one ``string`` array can.

    Sorting (a ``take``) gathers the column into one array: past 2 GiB of content that overflows 32-bit offsets
    ("offset overflow while concatenating arrays"), so the column is widened first (chunk by chunk, no gathering).
    """
    content = files.column("content")
    if not pa.types.is_string(content.type) or int(value_lengths(content).sum()) <= STRING_BYTES:
        return files, False
    return files.set_column(files.schema.get_field_index("content"), "content", content.cast(pa.large_string())), True


def _narrowed(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A ``large_string`` column back as ``string`` chunks of at most ``STRING_BYTES`` each (the FILES schema)."""
    pieces = []
    for chunk in column.chunks:  # chunk by chunk: no gathering of the whole column into one more copy
        data, offsets = arrow_var_width(chunk)
        valid = pc.is_valid(chunk) if chunk.null_count else None
        for start, stop in byte_ranges(np.diff(offsets), STRING_BYTES):
            # Built from the piece's own bytes and 32-bit offsets: Arrow's cast refuses a slice of a > 2 GiB array.
            piece = pa.Array.from_buffers(pa.string(), stop - start, [
                None, pa.py_buffer((offsets[start : stop + 1] - offsets[start]).astype(np.int32)),
                pa.py_buffer(data[offsets[start] : offsets[stop]])])
            if valid is not None:
                piece = pc.if_else(valid.slice(start, stop - start), piece, pa.scalar(None, pa.string()))
            pieces.append(piece)
    return pa.chunked_array(pieces, pa.string())


def byte_ranges(lengths: np.ndarray, most: int) -> list[tuple[int, int]]:
    """Consecutive (start, stop) ranges over ``lengths`` of at most ``most`` bytes each (a larger value alone).

    >>> byte_ranges(np.array([3, 3, 3, 9, 1]), 6)
    [(0, 2), (2, 3), (3, 4), (4, 5)]
    """
    ends = np.cumsum(lengths)
    ranges, start = [], 0
    while start < lengths.size:
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + most, side="right")), start + 1)
        ranges.append((start, stop))
        start = stop
    return ranges


def _sign_all(content: pa.ChunkedArray, cfg: NearDedupConfig, hasher, batch_bytes: int):
    """(signatures, shingle counts, band keys) of every file, batches signed on ``cfg.local_threads`` threads."""
    ranges = byte_ranges(value_lengths(content), batch_bytes)

    def sign(span):
        return sign_documents(content.slice(span[0], span[1] - span[0]), hasher, cfg.ngram)

    n = len(content)
    sigs = np.empty((n, hasher.num_perm), dtype=np.uint32)
    counts = np.zeros(n, dtype=np.int64)
    keys = np.empty((n, hasher.bands), dtype=np.int64)
    with ThreadPoolExecutor(cfg.local_threads) as pool:
        for done, ((start, stop), signed) in enumerate(zip(ranges, pool.map(sign, ranges), strict=True)):
            sigs[start:stop], counts[start:stop], keys[start:stop] = (signed.signatures, signed.num_shingles,
                                                                     signed.band_keys)
            if done % 20 == 0 or done == len(ranges) - 1:
                log.info("signatures: %d / %d files", stop, n)
    return sigs, counts, keys


def _shingle_sets(content: pa.ChunkedArray, rows: np.ndarray, cfg: NearDedupConfig, batch_bytes: int):
    """CSR (values, offsets) of the sorted distinct shingle sets of ``rows`` of ``content``, in that order."""
    ranges = byte_ranges(value_lengths(content)[rows], batch_bytes)

    def sets(span):
        return shingle_set_arrays(content.take(pa.array(rows[span[0] : span[1]], pa.int64())), cfg.ngram)

    with ThreadPoolExecutor(cfg.local_threads) as pool:
        parts = list(pool.map(sets, ranges))
    values = np.concatenate([v for v, _ in parts]) if parts else np.empty(0, dtype=np.uint64)
    offsets = np.zeros(rows.size + 1, dtype=np.int64)
    if parts:
        np.cumsum(np.concatenate([np.diff(o) for _, o in parts]), out=offsets[1:])
    return values, offsets


def dedup_table(files: pa.Table, cfg: NearDedupConfig, *, snapshot: str, index: pa.Table | None = None) -> DedupResult:
    """Deduplicate one snapshot's FILES table (against an optional SIGNATURES index of earlier snapshots)."""
    hasher = cfg.hasher()
    budget = MemoryBudget(cfg.task_memory_bytes or LOCAL_TASK_BYTES)
    files, widened = _widened(files)
    files = files.sort_by("id")
    attrs = files.select(KEEP_COLUMNS)
    ids = attrs.column("id").to_pylist()
    metrics: dict = {"s_curve": hasher.s_curve(), "engine": "local"}
    drops: Counter = Counter()

    t0 = time.monotonic()
    batch_bytes = min(budget.batch_bytes, BATCH_BYTES)
    with phase(log, "signatures"):
        sigs, counts, keys = _sign_all(files.column("content"), cfg, hasher, batch_bytes)
    shingled = counts > 0
    metrics["too_short_to_shingle"] = int((~shingled).sum())
    metrics["signature_seconds"] = round(time.monotonic() - t0, 3)

    duplicates: list[dict] = []
    removed_repos = set()
    if cfg.repo_level:
        with phase(log, "repository level"):
            removed_repos = _repo_level(attrs, sigs, shingled, cfg, hasher, metrics, duplicates)
    repos = attrs.column("repo").to_pylist()
    by_repo = np.array([r in removed_repos for r in repos], dtype=bool) if removed_repos else np.zeros(len(ids), bool)
    drops["near_duplicate_repo"] += int(by_repo.sum())

    # The graph's nodes: this snapshot's live files, then the index's, all ranked by node name.
    live = np.flatnonzero(shingled & ~by_repo)
    index_rows = index.to_pylist() if index is not None and index.num_rows else []
    metrics["index_files"] = len(index_rows)
    names = [ids[i] for i in live] + [index_node(r["id"], r["snapshot"]) for r in index_rows]
    node_sigs = np.concatenate([sigs[live], np.array([signature_from_bytes(r["signature"]) for r in index_rows],
                                                     dtype=np.uint32).reshape(-1, hasher.num_perm)])
    node_keys = np.concatenate([keys[live], hasher.band_keys(node_sigs[len(live):])])
    is_index = np.arange(len(names)) >= len(live)
    order = np.array(sorted(range(len(names)), key=names.__getitem__), dtype=np.int64)
    names = [names[i] for i in order]
    node_sigs, node_keys, is_index = node_sigs[order], node_keys[order], is_index[order]
    file_row = np.full(len(names), -1, dtype=np.int64)  # node -> row of ``files`` (-1: index)
    file_row[~is_index] = live[order[~is_index]]

    with phase(log, "candidate pairs and estimates"):
        src, dst, estimate = estimated_candidates(node_keys, node_sigs, is_index, cfg.max_bucket_full_pairs)
    metrics["candidate_pairs"] = int(src.size)
    by_index = is_index[src] | is_index[dst]
    floor = estimate_floor(cfg.num_perm, cfg.threshold, cfg.estimate_reject_error) if cfg.verify else -1.0
    ceiling = estimate_ceiling(cfg.num_perm, cfg.threshold, cfg.estimate_accept_error) if cfg.verify else 2.0
    plausible = ~by_index & (estimate > floor)
    sure = plausible & (estimate >= ceiling)  # accepted on the estimate alone
    check = plausible & ~sure
    metrics["rejected_by_estimate"] = int((~by_index & ~plausible).sum()) if cfg.verify else 0
    metrics["accepted_by_estimate"] = int(sure.sum()) if cfg.verify else 0

    # Shingle sets of the files in pairs to verify only, read again from the content: node -> set number.
    involved = np.unique(np.concatenate([src[check], dst[check]])) if cfg.verify else np.empty(0, np.int64)
    set_of = np.full(len(names), -1, dtype=np.int64)
    set_of[involved] = np.arange(involved.size)
    with phase(log, "exact verification"):
        values, offsets = _shingle_sets(files.column("content"), file_row[involved], cfg, batch_bytes)
        exact = np.full(src.size, np.nan)
        exact[check] = kernels.indexed_jaccard(values, offsets, set_of[src[check]], set_of[dst[check]])
    if not cfg.verify:
        accepted = np.ones(src.size, dtype=bool)
    else:
        accepted = np.where(by_index, estimate >= cfg.threshold, sure | (check & (exact >= cfg.threshold)))
    metrics["verified_pairs"] = int(accepted.sum())
    edges = list(zip(src[accepted].tolist(), dst[accepted].tolist(), strict=True))

    with phase(log, "connected components"):
        removed, keeper, sizes = keepers(edges, is_index, lambda nodes: _records(attrs, file_row, index_rows, names,
                                                                                 is_index, nodes))
    metrics["components"], metrics["largest_component"] = len(sizes), max(sizes, default=0)
    kept_exact = set_jaccards(values, offsets, set_of, removed, keeper)
    kept_estimate = kernels.indexed_agreement(node_sigs, removed, keeper)
    metrics["removed_below_threshold_to_keeper"] = int((kept_exact < cfg.threshold).sum())
    for r, k, j, e in zip(removed.tolist(), keeper.tolist(), kept_exact.tolist(), kept_estimate.tolist(), strict=True):
        duplicates.append({"removed_id": names[r], "kept_id": names[k], "level": "file",
                           "jaccard": None if np.isnan(j) else j, "estimated_jaccard": e})
    drops["near_duplicate_file"] += int(removed.size)

    removed_rows = np.zeros(len(ids), dtype=bool)
    removed_rows[file_row[removed]] = True
    removed_rows |= by_repo
    kept = files.filter(pa.array(~removed_rows))
    if widened:
        kept = kept.set_column(kept.schema.get_field_index("content"), "content", _narrowed(kept.column("content")))
    out_rows = np.flatnonzero(shingled & ~removed_rows)
    dup_table = pa.Table.from_pylist(sorted(duplicates, key=lambda d: (d["level"], d["removed_id"])), DUPLICATES)
    return DedupResult(kept, dup_table, _signature_table(attrs, out_rows, counts, sigs, snapshot, scheme_tag(cfg)),
                       drops, metrics, [(names[a], names[b]) for a, b in edges])


def _records(attrs: pa.Table, file_row: np.ndarray, index_rows: list[dict], names: list[str], is_index: np.ndarray,
             nodes: list[int]) -> dict[int, dict]:
    """node -> keep-rule record, for ``nodes`` (index nodes are named ``id@snapshot``)."""
    by_name = {index_node(r["id"], r["snapshot"]): r for r in index_rows}
    files = [n for n in nodes if not is_index[n]]
    rows = attrs.take(pa.array(file_row[files], pa.int64())).to_pylist() if files else []
    out = dict(zip(files, rows, strict=True))
    out.update({n: dict(by_name[names[n]], id=names[n]) for n in nodes if is_index[n]})
    return out


def _signature_table(attrs: pa.Table, rows: np.ndarray, counts: np.ndarray, sigs: np.ndarray, snapshot: str,
                     tag: str) -> pa.Table:
    picked = attrs.take(pa.array(rows, pa.int64()))
    width = sigs.shape[1] * 4
    signature = pa.Array.from_buffers(pa.binary(), rows.size, [
        None, pa.py_buffer((np.arange(rows.size + 1) * width).astype(np.int32)),
        pa.py_buffer(np.ascontiguousarray(sigs[rows], dtype="<u4"))])
    columns = {name: picked.column(name) for name in KEEP_COLUMNS}
    columns.update(snapshot=pa.array([snapshot] * rows.size, pa.string()), scheme=pa.array([tag] * rows.size),
                   num_shingles=pa.array(counts[rows], pa.int64()), signature=signature)
    return pa.table([columns[f.name] for f in SIGNATURES], schema=SIGNATURES)


def _repo_level(attrs: pa.Table, sigs: np.ndarray, shingled: np.ndarray, cfg, hasher, metrics, duplicates) -> set[str]:
    """Repositories that are forks or copies of a better one: whole-repository MinHash, LSH, estimate, keep rule."""
    repos = np.array(attrs.column("repo").to_pylist(), dtype=object)
    rows = np.flatnonzero(shingled)
    if rows.size == 0:
        metrics.update(repo_candidate_pairs=0, repo_verified_pairs=0, repos_removed=0)
        return set()
    order = rows[np.argsort(repos[rows], kind="stable")]
    names = repos[order]
    starts = np.flatnonzero(np.concatenate(([True], names[1:] != names[:-1])))
    repo_names = names[starts].tolist()
    repo_sigs = np.minimum.reduceat(sigs[order], starts, axis=0)
    src, dst = band_pairs(hasher.band_keys(repo_sigs), cfg.max_bucket_full_pairs)
    estimate = kernels.indexed_agreement(repo_sigs, src, dst)
    accepted = estimate >= cfg.repo_threshold
    metrics["repo_candidate_pairs"] = int(src.size)
    metrics["repo_verified_pairs"] = int(accepted.sum())
    groups: dict[int, list[int]] = defaultdict(list)
    repo_edges = zip(src[accepted].tolist(), dst[accepted].tolist(), strict=True)
    for repo, root in connected_components([], repo_edges).items():
        groups[root].append(repo)
    involved = {repo_names[r] for group in groups.values() for r in group}
    files_of: dict[str, list[dict]] = defaultdict(list)
    if involved:
        mask = pc.is_in(attrs.column("repo"), value_set=pa.array(sorted(involved), pa.string()))
        for record in attrs.filter(mask).to_pylist():
            files_of[record["repo"]].append(record)
    removed: set[str] = set()
    for group in groups.values():
        keeper = min(group, key=lambda r: keep_key(repo_record(files_of[repo_names[r]], repo_names[r])))
        for repo in sorted(group):
            if repo != keeper:
                removed.add(repo_names[repo])
                duplicates.append({"removed_id": repo_names[repo], "kept_id": repo_names[keeper], "level": "repo",
                                   "jaccard": None, "estimated_jaccard": float(
                                       kernels.indexed_agreement(repo_sigs, np.array([repo]), np.array([keeper]))[0])})
    metrics["repos_removed"] = len(removed)
    return removed
