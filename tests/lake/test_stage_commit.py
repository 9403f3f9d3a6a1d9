"""The commit protocol: attempts, _SUCCESS, re-runs replacing exactly one partition, resume."""

import json

import pyarrow as pa
import pytest

from lake.stage import Lake, StageNotCommitted, StageRun, check_snapshot


def table(values):
    return pa.table({"x": pa.array(values, pa.int64())})


def test_commit_writes_pointer_stats_and_data(lake_root):
    lake = Lake.at(str(lake_root))
    with StageRun(lake, "2026-10", "demo_stage") as run:
        run.write_table("rows", table([1, 2, 3]), 0)
        run.stats.records_in, run.stats.records_out = 4, 3
        run.stats.drop("too_small")
    info = lake.require("2026-10", "demo_stage")
    assert info.attempt == run.attempt
    assert lake.read_table("2026-10", "demo_stage", "rows").column("x").to_pylist() == [1, 2, 3]
    stats = json.loads((lake_root / info.prefix / "_stats.json").read_text())
    assert stats["records_in"] == 4 and stats["drop_reasons"] == {"too_small": 1}
    assert stats["records_per_s"] > 0
    assert lake.stats("2026-10", "demo_stage")["records_out"] == 3


def test_rerun_replaces_only_that_partition(lake_root):
    lake = Lake.at(str(lake_root))
    for snapshot, values in [("2026-09", [9]), ("2026-10", [1])]:
        with StageRun(lake, snapshot, "s") as run:
            run.write_table("rows", table(values), 0)
    first = lake.require("2026-10", "s").attempt
    with StageRun(lake, "2026-10", "s") as run:
        run.write_table("rows", table([2]), 0)
    assert lake.read_table("2026-10", "s", "rows").column("x").to_pylist() == [2]
    assert lake.read_table("2026-09", "s", "rows").column("x").to_pylist() == [9]
    assert not (lake_root / "snapshot=2026-10" / "s" / f"attempt={first}").exists(), "superseded attempt removed"


def test_failed_run_leaves_committed_partition_untouched(lake_root):
    lake = Lake.at(str(lake_root))
    with StageRun(lake, "s1", "s") as run:
        run.write_table("rows", table([1]), 0)
    with pytest.raises(RuntimeError):
        with StageRun(lake, "s1", "s") as run2:
            run2.write_table("rows", table([7, 7]), 0)
            raise RuntimeError("killed mid-write")
    assert lake.read_table("s1", "s", "rows").column("x").to_pylist() == [1]
    assert lake.require("s1", "s").attempt == run.attempt


def test_resume_adopts_uncommitted_attempt_and_its_finished_shards(lake_root):
    lake = Lake.at(str(lake_root))
    with pytest.raises(KeyboardInterrupt):
        with StageRun(lake, "s1", "sharded", resume=True) as run:
            run.write_table("rows", table([0]), 0)
            run.mark_shard_done("0", {"rows": 1})
            raise KeyboardInterrupt
    with StageRun(lake, "s1", "sharded", resume=True) as again:
        assert again.attempt == run.attempt and again.resumed
        assert again.shard_done("0") and not again.shard_done("1")
        assert again.shard_info("0") == {"rows": 1}
        again.write_table("rows", table([1]), 1)
        again.mark_shard_done("1")
    assert sorted(lake.read_table("s1", "sharded", "rows").column("x").to_pylist()) == [0, 1]
    with StageRun(lake, "s1", "sharded", resume=True) as fresh:
        assert fresh.attempt != run.attempt, "a committed attempt is never adopted"
        fresh.write_table("rows", table([5]), 0)


def test_missing_stage_and_bad_names_give_clear_errors(lake_root):
    lake = Lake.at(str(lake_root))
    with pytest.raises(StageNotCommitted, match="no committed output for snapshot '2026-10'"):
        lake.require("2026-10", "crawl")
    for bad in ["", "../x", "a/b", "x" * 80]:
        with pytest.raises(ValueError, match="invalid snapshot id"):
            check_snapshot(bad)
    with pytest.raises(ValueError, match="escapes the lake root"):
        lake.storage.write_bytes("../outside", b"x")


def test_committed_stages_listing(lake_root):
    lake = Lake.at(str(lake_root))
    for stage in ["a", "b"]:
        with StageRun(lake, "snap", stage) as run:
            run.write_table("rows", table([1]), 0)
    assert [c.stage for c in lake.committed_stages("snap")] == ["a", "b"]
    assert lake.snapshots() == ["snap"]


def test_commit_removes_abandoned_attempts_even_if_only_empty_directories(lake_root):
    lake = Lake.at(str(lake_root))
    abandoned = lake_root / "snapshot=s1" / "s" / "attempt=19700101T000000000000Z-dead00" / "files" / "_temporary"
    abandoned.mkdir(parents=True)
    with StageRun(lake, "s1", "s") as run:
        run.write_table("rows", table([1]), 0)
    assert sorted(p.name for p in (lake_root / "snapshot=s1" / "s").iterdir()) == ["_SUCCESS", f"attempt={run.attempt}"]


def test_row_groups_are_bounded_in_bytes_not_only_rows(lake_root):
    """A reader holds a whole column chunk: large values get fewer rows per group (8192 files of 1 MB would not fit)."""
    import pyarrow.parquet as pq

    from lake.stage import ROW_GROUP_BYTES

    lake = Lake.at(str(lake_root))
    big = pa.table({"content": ["x" * (ROW_GROUP_BYTES // 10)] * 40})
    with StageRun(lake, "2026-10", "s") as run:
        key = run.write_table("files", big, 0)
        run.write_table("small", table(list(range(100))), 0)
    groups = pq.ParquetFile(lake_root / key).metadata
    assert groups.num_row_groups >= 4 and max(groups.row_group(i).num_rows for i in range(groups.num_row_groups)) <= 10
    assert lake.read_table("2026-10", "s", "files").num_rows == 40
    assert pq.ParquetFile(lake_root / key.replace("files", "small")).metadata.num_row_groups == 1


def test_releases_and_scorer_versions_are_partitions_with_the_same_contract(lake_root):
    from lake.stage import Partition

    lake = Lake.at(str(lake_root))
    release, scorer = Partition.release("r1"), Partition.scorer("v1")
    for part in (release, scorer, "2026-10"):
        with StageRun(lake, part, "rows") as run:
            run.write_table("rows", table([1, 2]), 0)
    assert (lake_root / "release=r1" / "rows" / "_SUCCESS").exists()
    assert (lake_root / "models" / "scorer" / "v1" / "rows" / "_SUCCESS").exists()
    assert lake.read_table(release, "rows", "rows").num_rows == 2
    assert lake.releases() == ["r1"] and lake.scorer_versions() == ["v1"] and lake.snapshots() == ["2026-10"]
    info = lake.require(release, "rows")
    assert info.prefix.startswith("release=r1/rows/attempt=") and info.partition == release
    assert info.stats["release"] == "r1" and info.stats["partition"] == "release=r1"
    assert lake.require("2026-10", "rows").stats["snapshot"] == "2026-10"
    with pytest.raises(StageNotCommitted, match="no committed output for release 'r2'.*--release r2"):
        lake.require(Partition.release("r2"), "rows")
    with pytest.raises(ValueError, match="invalid release name"):
        Partition.release("../x")
