"""The ``stages.near_dedup`` section of the profile YAML, with the defaults documented where they are set."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lake.config import StrictModel
from spark_jobs.near_dedup.budget import MemoryBudget
from spark_jobs.near_dedup.minhash import MinHasher


class NearDedupConfig(StrictModel):
    # Stage whose committed `files` dataset is deduplicated.
    input: str = "exact_dedup"
    # spark: the distributed job (production); local: the same logic in one process (small snapshots, parity checks).
    engine: Literal["spark", "local"] = "spark"
    # Word n-gram size of the code-aware shingles (text-dedup / bigcode use 5).
    ngram: int = Field(5, ge=1, le=64)
    # MinHash permutations and the LSH layout: 250 = 25 bands x 10 rows, the bigcode/text-dedup setting. The S-curve
    # of 25 x 10 is 0.02 / 0.51 / 0.94 / 1.00 at Jaccard 0.5 / 0.7 / 0.8 / 0.9 (logged and stored in the stats).
    num_perm: int = Field(250, ge=1, le=4096)
    bands: int = Field(25, ge=1)
    rows: int = Field(10, ge=1)
    # Seed of the permutations (datasketch's MinHash(seed=...)); signatures of different seeds are incomparable.
    seed: int = 42
    # Jaccard at or above which two files are duplicates. 0.8 sits above the S-curve's midpoint (0.72) of 25 x 10,
    # so a pair at the threshold becomes a candidate with probability 0.94 and higher pairs almost surely.
    threshold: float = Field(0.8, gt=0.0, le=1.0)
    # Check each candidate pair's exact Jaccard on the shingle sets (drops LSH false positives; costs one more pass).
    verify: bool = True
    # A candidate whose MinHash estimate is so low that a pair at the threshold would show it with probability at
    # most this (a binomial tail: estimate <= 0.668 for 250 permutations at 0.8) is rejected without reading its
    # files again; the rest are verified exactly. 1e-6 per pair costs nothing measurable in recall and spares most
    # of the verification work on real code (templated files and shared boilerplate make most LSH candidates). 0:
    # verify every candidate.
    estimate_reject_error: float = Field(1e-6, ge=0.0, lt=0.5)
    # The mirror rule: a candidate whose estimate a pair below the threshold would reach with probability at most
    # this (estimate >= 0.916 for 250 permutations at 0.8) is accepted without exact verification; on the held-out
    # corpus these are a fifth of the pairs above the floor (copies and templated files, J >= 0.85 every one) and
    # half the files verification would read. Its `jaccard` in the duplicates is then null unless both files'
    # shingle sets were built for other pairs. 0: verify every candidate above the floor (precision exactly 1).
    estimate_accept_error: float = Field(1e-6, ge=0.0, lt=0.5)
    # Buckets with at most this many files emit all their pairs; bigger ones (boilerplate repeated thousands of
    # times) emit a star to their smallest id, so a bucket of n files costs n - 1 pairs, not n^2 / 2.
    max_bucket_full_pairs: int = Field(32, ge=2)
    # Steps over small data in one task, when their inputs fit its memory budget (x3 for the copies it makes): the
    # candidate pairs and estimates (every signature; the one-process engine's vectorized step instead of the bucket
    # shuffle and two signature joins), the exact Jaccards of the pairs to verify (every shingle set built, instead
    # of moving each pair's sets to meet), and when all of it fits together, verification, components, keep rule and
    # scores as one task (the one-process engine's code). Measured on the held-out corpus at 32k files: candidate
    # pairs 3.3 s -> 1.4 s, verification to keep rule ~3.5 s -> ~2 s (benchmarks/RESULTS-near-dedup.md). Bigger
    # inputs take the distributed path; false: always distributed.
    one_task_steps: bool = True
    # Repository level: repositories whose whole-repository MinHash (the minimum over their files' signatures, i.e.
    # the MinHash of the union of their shingles) estimates a Jaccard >= repo_threshold are forks/copies; only the
    # keep-rule winner's files go on to file-level dedup.
    repo_level: bool = True
    repo_threshold: float = Field(0.8, gt=0.0, le=1.0)
    # Incremental: dedup against the `signatures` index of earlier snapshots (their files always win).
    # None: every earlier snapshot (by id order) with a committed near_dedup; []: none.
    index_snapshots: list[str] | None = None
    # Bytes of memory one task may use: every Arrow batch, cache batch, persisted partition, bucket step and
    # union-find partition is sized from it (spark_jobs/near_dedup/budget.py). None: derived from the executor's
    # heap (the driver's on a local master) x spark.memory.fraction / concurrent tasks; the local engine: 1 GiB.
    task_memory_bytes: int | None = Field(None, ge=MemoryBudget.MIN_TASK_BYTES)
    # Threads of the local engine (the compiled kernels release the GIL); the Spark engine uses its task slots.
    local_threads: int = Field(2, ge=1)
    # Parquet parts per output dataset (deterministic: rows are hash-partitioned by id and sorted).
    output_partitions: int = Field(8, ge=1)
    # Large-star / small-star rounds before the connected-components job gives up (it needs O(log^2 n)).
    max_cc_iterations: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _layout_fits(self):
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self

    def hasher(self) -> MinHasher:
        return MinHasher(num_perm=self.num_perm, seed=self.seed, bands=self.bands, rows=self.rows)
