"""Near dedup in one process: the reference the Spark job must agree with, and the engine for small snapshots.

Same functions as the Spark job (shingling, signatures, band keys, bucket pairs, verification, keep rule); only
the plumbing differs (dicts and union-find instead of shuffles and large-star/small-star).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spark_jobs.keep_rule import keep_key
from spark_jobs.near_dedup.config import NearDedupConfig
from spark_jobs.near_dedup.graph import candidate_pairs, connected_components
from spark_jobs.near_dedup.minhash import estimated_jaccard, signature_bytes, signature_from_bytes
from spark_jobs.near_dedup.outputs import DUPLICATES, KEEP_COLUMNS, SIGNATURES, scheme_tag
from spark_jobs.near_dedup.shingles import jaccard, shingle_hashes
from spark_jobs.near_dedup.signing import accept_pair, sign_documents

log = logging.getLogger(__name__)
PROGRESS_EVERY = 5000


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


def dedup_table(files: pa.Table, cfg: NearDedupConfig, *, snapshot: str, index: pa.Table | None = None) -> DedupResult:
    """Deduplicate one snapshot's FILES table (against an optional SIGNATURES index of earlier snapshots)."""
    hasher = cfg.hasher()
    rows = files.to_pylist()
    by_id = {r["id"]: r for r in rows}
    metrics: dict = {"s_curve": hasher.s_curve(), "engine": "local"}
    drops: Counter = Counter()

    t0 = time.monotonic()
    sigs: dict[str, np.ndarray] = {}
    keys: dict[str, list[int]] = {}
    counts: dict[str, int] = {}
    for start in range(0, len(rows), cfg.batch_size):
        batch = rows[start : start + cfg.batch_size]
        signed = sign_documents([r["content"] for r in batch], hasher, cfg.ngram)
        for r, n, sig, k in zip(batch, signed.num_shingles, signed.signatures, signed.band_keys, strict=True):
            if k is not None:
                sigs[r["id"]], keys[r["id"]], counts[r["id"]] = sig, k, n
        if (start // cfg.batch_size) % max(1, PROGRESS_EVERY // cfg.batch_size) == 0:
            log.info("signatures: %d / %d files", min(start + cfg.batch_size, len(rows)), len(rows))
    metrics["too_short_to_shingle"] = len(rows) - len(sigs)
    metrics["signature_seconds"] = round(time.monotonic() - t0, 3)

    duplicates: list[dict] = []
    removed_repos = _repo_level(rows, sigs, cfg, hasher, metrics, duplicates) if cfg.repo_level else set()
    removed_by_repo = {r["id"] for r in rows if r["repo"] in removed_repos}
    drops["near_duplicate_repo"] += len(removed_by_repo)

    index_rows = {}
    if index is not None and index.num_rows:
        for r in index.to_pylist():
            node = index_node(r["id"], r["snapshot"])
            index_rows[node] = dict(r, id=node)
            sigs[node] = signature_from_bytes(r["signature"])
            keys[node] = hasher.band_keys(sigs[node])
    metrics["index_files"] = len(index_rows)

    live = {i: k for i, k in keys.items() if i not in removed_by_repo}
    pairs = sorted(p for p in candidate_pairs(live, cfg.max_bucket_full_pairs)
                   if not (p[0] in index_rows and p[1] in index_rows))
    metrics["candidate_pairs"] = len(pairs)
    sets: dict[str, np.ndarray] = {}

    def shingle_set(doc: str) -> np.ndarray | None:
        if doc in index_rows:
            return None
        if doc not in sets:
            sets[doc] = shingle_hashes(by_id[doc]["content"], cfg.ngram)
        return sets[doc]

    edges = []
    for a, b in pairs:
        exact = jaccard(shingle_set(a), shingle_set(b)) if cfg.verify and a not in index_rows and b not in index_rows \
            else None
        if accept_pair(exact, estimated_jaccard(sigs[a], sigs[b]), cfg.threshold, cfg.verify):
            edges.append((a, b))
    metrics["verified_pairs"] = len(edges)

    members: dict[str, list[str]] = defaultdict(list)
    for doc, root in connected_components([], edges).items():
        members[root].append(doc)
    metrics["components"] = len(members)
    metrics["largest_component"] = max((len(m) for m in members.values()), default=0)
    removed_by_file: set[str] = set()
    below = 0
    for group in members.values():
        keeper = min(group, key=lambda d: (0, keep_key(index_rows[d])) if d in index_rows else (1, keep_key(by_id[d])))
        for doc in sorted(group):
            if doc == keeper or doc in index_rows:
                continue
            removed_by_file.add(doc)
            exact = jaccard(shingle_set(doc), shingle_set(keeper)) if cfg.verify and keeper not in index_rows \
                else None
            below += exact is not None and exact < cfg.threshold
            duplicates.append({"removed_id": doc, "kept_id": keeper, "level": "file", "jaccard": exact,
                               "estimated_jaccard": estimated_jaccard(sigs[doc], sigs[keeper])})
    drops["near_duplicate_file"] += len(removed_by_file)
    metrics["removed_below_threshold_to_keeper"] = below

    removed = removed_by_repo | removed_by_file
    kept = files.filter(pc.invert(pc.is_in(files.column("id"), value_set=pa.array(sorted(removed), pa.string()))))
    kept = kept.sort_by("id")
    tag = scheme_tag(cfg)
    sig_rows = [dict({c: by_id[i][c] for c in KEEP_COLUMNS}, snapshot=snapshot, scheme=tag,
                     num_shingles=counts[i], signature=signature_bytes(sigs[i]))
                for i in sorted(counts) if i not in removed]
    dup_table = pa.Table.from_pylist(sorted(duplicates, key=lambda d: (d["level"], d["removed_id"])), DUPLICATES)
    return DedupResult(kept, dup_table, pa.Table.from_pylist(sig_rows, SIGNATURES), drops, metrics, edges)


def _repo_level(rows, sigs, cfg, hasher, metrics, duplicates) -> set[str]:
    """Repositories that are forks or copies of a better one: whole-repository MinHash, LSH, estimate, keep rule."""
    files_of: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        files_of[r["repo"]].append(r)
    repo_sigs = {repo: np.minimum.reduce([sigs[r["id"]] for r in fs if r["id"] in sigs])
                 for repo, fs in files_of.items() if any(r["id"] in sigs for r in fs)}
    pairs = candidate_pairs({repo: hasher.band_keys(s) for repo, s in repo_sigs.items()}, cfg.max_bucket_full_pairs)
    edges = [(a, b) for a, b in sorted(pairs)
             if estimated_jaccard(repo_sigs[a], repo_sigs[b]) >= cfg.repo_threshold]
    metrics["repo_candidate_pairs"] = len(pairs)
    metrics["repo_verified_pairs"] = len(edges)
    groups: dict[str, list[str]] = defaultdict(list)
    for repo, root in connected_components([], edges).items():
        groups[root].append(repo)
    removed: set[str] = set()
    for group in groups.values():
        keeper = min(group, key=lambda repo: keep_key(repo_record(files_of[repo], repo)))
        for repo in sorted(group):
            if repo != keeper:
                removed.add(repo)
                duplicates.append({"removed_id": repo, "kept_id": keeper, "level": "repo", "jaccard": None,
                                   "estimated_jaccard": estimated_jaccard(repo_sigs[repo], repo_sigs[keeper])})
    metrics["repos_removed"] = len(removed)
    return removed
