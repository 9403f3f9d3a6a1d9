"""Near dedup past memory: every batch and block is sized in bytes, so a corpus several times the executor's memory
is processed with the same pairs as with ample memory (issue #19).

The corpus is large real files: standard-library modules concatenated into files of 20 KB to 900 KB, a fifth of
them with an edited near-copy, then disguised copies (``benchmarks.near_dedup_corpus.disguise``: letters and digits
permuted per copy, so copies share almost nothing) up to the wanted size. Before the byte budget, the job died on
such files with ``OutOfMemoryError`` (a cached partition read back whole, an Arrow batch of 512 large files).
"""

from __future__ import annotations

import random
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from benchmarks.near_dedup_corpus import disguise
from lake.config import REPO_ROOT
from spark_jobs.near_dedup.budget import RESERVED_BYTES, MemoryBudget
from spark_jobs.near_dedup.config import NearDedupConfig
from spark_jobs.near_dedup.local import dedup_table
from spark_jobs.near_dedup.spark import dedup_frames
from tests.spark_jobs.near_dedup.corpus_helpers import STDLIB, commit_input, edit, record, table

SIZES = [20_000, 60_000, 150_000, 400_000, 900_000]
# The executor's memory for data, Spark's execution + storage memory, is (heap - 300 MB reserved) x
# spark.memory.fraction: (1 GB - 300 MB) x 0.05 = 36 MB here (18 MB per task), and the corpus is 8x that (a 4x
# corpus was also run until CI time mattered: 8x is the harder case and passes through the same code).
# (At Spark's smallest heap, 512 MB with fraction 0.15, the dedup itself finishes on 8x but writing the kept
# content then exhausts what Spark's own bookkeeping leaves of the heap: notes/issue-19.md.)
HEAP, FRACTION = "1g", 0.05
EXECUTOR_DATA_BYTES = int((2**30 - RESERVED_BYTES) * FRACTION)


def large_files(total_bytes: int) -> list[dict]:
    """FILES records of about ``total_bytes`` of large files with near-copies (see the module doc)."""
    sources = [p.read_text(encoding="utf-8") for p in sorted(STDLIB.glob("*.py")) if p.stat().st_size > 2_000]
    rng = random.Random(19)
    base, pos, n = [], 0, 0
    while pos < len(sources):
        text, size = "", SIZES[n % len(SIZES)]
        while len(text) < size and pos < len(sources):
            text += sources[pos]
            pos += 1
        base.append((f"big/m{n:04d}.py", text))
        n += 1
    originals = list(base)
    base += [(f"near/m{i:04d}.py", edit(t, rng, strength=6)) for i, (_, t) in enumerate(originals) if i % 5 == 0]
    records, copy = [], 0
    while sum(r["size_bytes"] for r in records) < total_bytes:
        for path, text in base:
            repo = f"copy{copy}/{path.split('/')[0]}"
            records.append(record(repo, path, disguise(text, copy), stars=copy))
        copy += 1
    return records


def outputs(result) -> dict:
    def rows(t: pa.Table) -> list:
        return sorted((r["removed_id"], r["kept_id"], r["level"], r["jaccard"] and round(r["jaccard"], 9),
                       round(r["estimated_jaccard"], 9)) for r in t.to_pylist())
    return {"kept": sorted(result["kept"]), "duplicates": rows(result["duplicates"])}


@pytest.mark.parametrize("one_task", [True, False], ids=["one-task-steps", "distributed"])
def test_tiny_task_budget_splits_the_work_and_keeps_the_pairs(spark, tmp_path, one_task):
    """The smallest task budget (8 MB: 1 MB Arrow batches, persisted partitions of 2 MB) on files up to 900 KB."""
    records = large_files(24 * 2**20)
    pq.write_table(table(records), tmp_path / "files.parquet", row_group_size=64)
    cfg = NearDedupConfig(repo_level=False, output_partitions=2, task_memory_bytes=MemoryBudget.MIN_TASK_BYTES,
                          one_task_steps=one_task)
    local = dedup_table(table(records), cfg, snapshot="m")
    got = dedup_frames(spark.read.parquet(str(tmp_path / "files.parquet")), cfg, snapshot="m")
    assert outputs({"kept": [r.id for r in got.kept.select("id").collect()],
                    "duplicates": pa.Table.from_pylist([r.asDict() for r in got.duplicates.collect()])}) == \
        outputs({"kept": local.kept.column("id").to_pylist(), "duplicates": local.duplicates})
    assert local.metrics["verified_pairs"] > 0 and got.metrics["verified_pairs"] == local.metrics["verified_pairs"]


@pytest.mark.slow
@pytest.mark.parametrize("times", [8])
def test_a_corpus_many_times_the_executor_memory_gives_the_pairs_of_ample_memory(tmp_path, make_config, times):
    records = large_files(times * EXECUTOR_DATA_BYTES)
    cfg = make_config(stages={"near_dedup": {"repo_level": False, "output_partitions": 2, "index_snapshots": []}})
    lake = cfg.open_lake()
    commit_input(lake, "big", records)
    profile = yaml.safe_load((REPO_ROOT / "config" / "local.yaml").read_text())
    profile["lake"]["root"] = str(cfg.lake.root)
    profile["spark"].update(driver_memory=HEAP, shuffle_partitions=4)
    profile["spark"]["conf"].update({"spark.memory.fraction": str(FRACTION), "spark.ui.enabled": "false"})
    profile["stages"]["near_dedup"].update(repo_level=False, output_partitions=2, index_snapshots=[])
    config = tmp_path / "tiny-heap.yaml"
    config.write_text(yaml.safe_dump(profile))
    proc = subprocess.run([sys.executable, "-m", "spark_jobs.near_dedup", "--snapshot", "big", "--config", str(config)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=840)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "OutOfMemoryError" not in proc.stderr
    spark_out = {"kept": lake.read_table("big", "near_dedup", "files").column("id").to_pylist(),
                 "duplicates": lake.read_table("big", "near_dedup", "duplicates")}
    ample = dedup_table(table(records), cfg.stage("near_dedup", NearDedupConfig), snapshot="big")
    assert outputs(spark_out) == outputs({"kept": ample.kept.column("id").to_pylist(),
                                          "duplicates": ample.duplicates})
    stats = lake.stats("big", "near_dedup")
    assert stats["bytes_in"] >= times * EXECUTOR_DATA_BYTES
    assert stats["metrics"]["verified_pairs"] == ample.metrics["verified_pairs"] > 0


def test_the_one_process_engine_sorts_content_past_one_arrow_string_array(corpus, monkeypatch):
    """Past 2 GiB of content, one ``string`` array overflows its 32-bit offsets when the table is sorted (found at
    8x on the held-out benchmark corpus: "offset overflow while concatenating arrays"). The engine widens the column
    for its work and hands the kept files back as ``string``: same result as below the limit. The limit is lowered
    here so that a small corpus crosses it, in several input chunks."""
    from spark_jobs.near_dedup import local

    cfg = NearDedupConfig(repo_level=False)
    files = table(corpus)
    files = pa.Table.from_batches(files.to_batches(max_chunksize=5))  # several chunks, as a Parquet read gives
    plain = local.dedup_table(files, cfg, snapshot="s")
    monkeypatch.setattr(local, "STRING_BYTES", 30_000)
    assert sum(r["size_bytes"] for r in corpus) > 3 * local.STRING_BYTES
    widened, was_widened = local._widened(files)
    assert was_widened and widened.schema.field("content").type == pa.large_string()
    assert local._widened(files.slice(0, 2)) == (files.slice(0, 2), False)
    wide = local.dedup_table(files, cfg, snapshot="s")
    assert wide.kept.schema.field("content").type == pa.string()
    assert wide.kept.column("content").num_chunks > 1
    assert wide.kept.to_pylist() == plain.kept.to_pylist()
    assert wide.duplicates.equals(plain.duplicates) and wide.edges == plain.edges and plain.edges


def test_narrowing_keeps_values_nulls_and_order_in_bounded_chunks(monkeypatch):
    from spark_jobs.near_dedup import local

    values = ["a" * 7, None, "", "bc" * 5, "é" * 4, None, "z"]
    wide = pa.chunked_array([pa.array(values[:3], pa.large_string()), pa.array(values[3:], pa.large_string())])
    monkeypatch.setattr(local, "STRING_BYTES", 10)
    narrow = local._narrowed(wide)
    assert narrow.type == pa.string() and narrow.to_pylist() == values
    assert narrow.num_chunks > 1
    assert all(sum(len(v.encode()) for v in c.to_pylist() if v) <= 10 for c in narrow.chunks)
    assert narrow.null_count == 2
