"""The near_dedup stage end to end on both engines: kept sets, drop reasons, parity, repo level, incremental."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from lake.stage import Lake, StageNotCommitted
from spark_jobs.near_dedup.__main__ import main
from spark_jobs.near_dedup.signing import estimate_ceiling
from spark_jobs.near_dedup.stage import run_near_dedup
from tests.spark_jobs.near_dedup.corpus_helpers import commit_input, edit, record, stdlib_sources

STAGES = {"near_dedup": {"output_partitions": 2}}


def outputs(lake: Lake, snapshot: str) -> dict:
    files = lake.read_table(snapshot, "near_dedup", "files")
    dups = lake.read_table(snapshot, "near_dedup", "duplicates").to_pylist()
    sigs = lake.read_table(snapshot, "near_dedup", "signatures")
    return {"kept": sorted(files.column("id").to_pylist()),
            "dups": sorted((d["removed_id"], d["kept_id"], d["level"], None if d["jaccard"] is None
                            else round(d["jaccard"], 9), round(d["estimated_jaccard"], 9)) for d in dups),
            "sigs": sorted(zip(sigs.column("id").to_pylist(), sigs.column("signature").to_pylist(), strict=True))}


def test_local_engine_removes_the_seeded_copies_and_keeps_the_best(make_config, corpus):
    cfg = make_config(stages=STAGES)
    lake = cfg.open_lake()
    commit_input(lake, "s1", corpus)
    run_near_dedup(cfg, "s1", engine="local")
    out = outputs(lake, "s1")
    copies = {r["id"] for r in corpus if r["repo"].startswith("copy/")}
    assert set(out["kept"]) == {r["id"] for r in corpus} - copies
    by_id = {r["id"]: r for r in corpus}
    for removed, kept, level, exact, estimate in out["dups"]:
        assert level == "file" and by_id[kept]["repo"] == "orig/a" and by_id[kept]["path"] == by_id[removed]["path"]
        if exact is None:  # accepted on its estimate alone (signing.estimate_ceiling): no shingle sets were built
            assert estimate >= estimate_ceiling(250, 0.8, 1e-6)
        else:
            assert exact >= 0.8 and abs(exact - estimate) < 0.2
    stats = lake.stats("s1", "near_dedup")
    assert stats["drop_reasons"] == {"near_duplicate_file": 6, "near_duplicate_repo": 0}
    assert stats["records_in"] == len(corpus) and stats["records_out"] == len(corpus) - 6
    m = stats["metrics"]
    assert m["too_short_to_shingle"] == 1 and m["verified_pairs"] == 6 and m["components"] == 6
    assert m["candidate_pairs"] >= 6 and set(m["s_curve"]) == {"0.50", "0.70", "0.80", "0.90"}
    # Clusters of two: a pair accepted on its estimate has no shingle sets, so no exact Jaccard; the others do.
    assert m["accepted_by_estimate"] == sum(d[3] is None for d in out["dups"])
    assert len(out["sigs"]) == len(out["kept"]) - 1  # the too-short file has no signature
    # what the UI shows: kept files per language, and the clusters (each seeded copy with its original)
    assert sum(m["records_out_by_language"].values()) == stats["records_out"]
    clusters = m["clusters"]["file"]
    assert clusters["clusters"] == 6 and clusters["removed"] == 6 and clusters["size_buckets"] == {"2": 6}
    for c in clusters["largest"]:
        assert c["size"] == 2 and c["kept"].startswith("orig/a/") and c["example"].startswith("copy/")
        assert c["kept"].removeprefix("orig/a/") == c["example"].split("/", 2)[2]


def test_without_the_estimate_ceiling_every_pair_is_verified(make_config, corpus):
    cfg = make_config(stages={"near_dedup": dict(STAGES["near_dedup"], estimate_accept_error=0.0)})
    commit_input(cfg.open_lake(), "s1", corpus)
    run_near_dedup(cfg, "s1", engine="local")
    dups = outputs(cfg.open_lake(), "s1")["dups"]
    assert len(dups) == 6 and all(d[3] is not None and d[3] >= 0.8 for d in dups)
    assert cfg.open_lake().stats("s1", "near_dedup")["metrics"]["accepted_by_estimate"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("one_task,sets_fit", [(True, True), (True, False), (False, False)],
                         ids=["one-task-steps", "one-task-candidates", "distributed"])
def test_spark_and_local_keep_the_same_files(make_config, corpus, spark, one_task, sets_fit, monkeypatch):
    if not sets_fit:  # the sets "too large" for one task: the exact step and the rest take the joins
        monkeypatch.setattr("spark_jobs.near_dedup.spark._exact_fits_one_task", lambda *_: False)
    rng = random.Random(3)
    # A fork of orig/a (every file lightly edited, fewer stars): repository level removes it as a whole.
    fork = [record("fork/a", r["path"], edit(r["content"], rng, 1), stars=2) for r in corpus if r["repo"] == "orig/a"]
    records = corpus + fork
    results = {}
    for engine in ("local", "spark"):
        # One lake for both runs: without index_snapshots: [] the second would dedup against the first.
        cfg = make_config(stages={"near_dedup": dict(STAGES["near_dedup"], index_snapshots=[],
                                                     one_task_steps=one_task)})
        lake = cfg.open_lake()
        snapshot = f"par-{engine}"
        commit_input(lake, snapshot, records)
        run_near_dedup(cfg, snapshot, engine=engine, spark=spark)
        results[engine] = outputs(lake, snapshot), lake.stats(snapshot, "near_dedup")
    (local, lstats), (spk, sstats) = results["local"], results["spark"]
    assert local == spk
    # The small corpus fits one task: both Spark paths are the ones asked for.
    metrics = sstats["metrics"]
    assert metrics["candidates_in_one_task"] is one_task
    assert metrics["exact_in_one_task"] is metrics["graph_in_one_task"] is sets_fit
    assert lstats["drop_reasons"] == sstats["drop_reasons"] == {"near_duplicate_file": 6,
                                                                "near_duplicate_repo": len(fork)}
    assert ("fork/a", "orig/a", "repo") == local["dups"][0][:3] or ("fork/a", "orig/a", "repo") in \
        [d[:3] for d in local["dups"]]
    for key in ("candidate_pairs", "rejected_by_estimate", "accepted_by_estimate", "verified_pairs", "components",
                "too_short_to_shingle", "repos_removed", "records_out_by_language", "clusters"):
        assert lstats["metrics"][key] == sstats["metrics"][key], key
    assert lstats["metrics"]["clusters"]["repo"]["largest"] == [{"size": 2, "kept": "orig/a", "example": "fork/a"}]


def test_keep_rule_decides_which_copy_survives(make_config):
    (path, text), = stdlib_sources(1)
    rng = random.Random(1)
    recs = [record("low/stars", path, text, stars=1),
            record("gpl/more", path, edit(text, rng, 1), stars=9, license="GPL-3.0"),
            record("mit/more", path, edit(text, rng, 1), stars=9, license="MIT")]
    cfg = make_config(stages={"near_dedup": {"repo_level": False}})
    commit_input(cfg.open_lake(), "k", recs)
    run_near_dedup(cfg, "k", engine="local")
    assert cfg.open_lake().read_table("k", "near_dedup", "files").column("repo").to_pylist() == ["mit/more"]


def test_incremental_snapshot_dedups_against_the_earlier_index(make_config, corpus):
    cfg = make_config(stages=STAGES)
    lake = cfg.open_lake()
    commit_input(lake, "2026-01", corpus)
    run_near_dedup(cfg, "2026-01", engine="local")
    rng = random.Random(11)
    originals = [r for r in corpus if r["repo"] == "orig/a"][:3]
    fresh = [record("new/b", r["path"], edit(r["content"], rng, 1), stars=1000) for r in originals]
    unrelated = [record("new/b", p, t) for p, t in stdlib_sources(2, offset=20)]
    commit_input(lake, "2026-02", fresh + unrelated)
    run_near_dedup(cfg, "2026-02", engine="local")
    out = outputs(lake, "2026-02")
    # Earlier snapshots are already published: their files win even against more stars.
    assert out["kept"] == sorted(r["id"] for r in unrelated)
    assert {d[1] for d in out["dups"]} == {f"{r['id']}@2026-01" for r in originals}
    assert all(d[3] is None and d[4] >= 0.8 for d in out["dups"])  # verified by the stored signatures
    stats = lake.stats("2026-02", "near_dedup")
    assert stats["metrics"]["index_snapshots"] == ["2026-01"]
    assert stats["metrics"]["index_files"] == len(outputs(lake, "2026-01")["sigs"])


def test_a_snapshot_waits_for_every_earlier_snapshots_near_dedup(make_config, corpus):
    from lake.ordering import EarlierSnapshotsPending

    cfg = make_config(stages=STAGES)
    lake = cfg.open_lake()
    for snapshot in ("2026-01", "2026-02", "2026-03"):
        commit_input(lake, snapshot, corpus[:6])
    with pytest.raises(EarlierSnapshotsPending, match="'2026-01', '2026-02' have no committed near_dedup"):
        run_near_dedup(cfg, "2026-03", engine="local")
    assert lake.commit_info("2026-03", "near_dedup") is None
    run_near_dedup(cfg, "2026-01", engine="local")
    with pytest.raises(EarlierSnapshotsPending, match="run the dedup DAG for '2026-02' first"):
        run_near_dedup(cfg, "2026-03", engine="local")
    # An explicit index is the user's decision: no wait.
    explicit = make_config(stages={"near_dedup": dict(STAGES["near_dedup"], index_snapshots=["2026-01"])})
    run_near_dedup(explicit, "2026-03", engine="local")
    assert lake.stats("2026-03", "near_dedup")["metrics"]["index_snapshots"] == ["2026-01"]


@pytest.mark.slow
@pytest.mark.parametrize("one_task", [True, False], ids=["one-task-steps", "distributed"])
def test_incremental_on_spark_matches_local(make_config, corpus, spark, one_task):
    rng = random.Random(5)
    later = [record("new/c", r["path"], edit(r["content"], rng, 1)) for r in corpus[:4]]
    kept = {}
    for engine in ("local", "spark"):
        cfg = make_config(stages={"near_dedup": dict(STAGES["near_dedup"], one_task_steps=one_task)})
        lake = cfg.open_lake()
        commit_input(lake, "a", corpus)
        run_near_dedup(cfg, "a", engine="local")
        commit_input(lake, "b", later)
        run_near_dedup(cfg, "b", engine=engine, spark=spark)
        kept[engine] = outputs(lake, "b")
    assert kept["local"] == kept["spark"]
    assert kept["local"]["kept"] == []


def test_rerun_gives_identical_output(make_config, corpus):
    cfg = make_config(stages=STAGES)
    lake = cfg.open_lake()
    commit_input(lake, "r", corpus)
    run_near_dedup(cfg, "r", engine="local")
    first = outputs(lake, "r")
    run_near_dedup(cfg, "r", engine="local")
    assert outputs(lake, "r") == first


def test_cli_reports_missing_input_and_bad_config(make_config, tmp_path, capsys):
    cfg = make_config()
    path = tmp_path / "cfg.yaml"
    path.write_text(f"profile: local\nlake:\n  root: {cfg.lake.root}\nstages:\n  near_dedup:\n    engine: local\n")
    assert main(["--snapshot", "nothing", "--config", str(path)]) == 2
    path.write_text(f"profile: local\nlake:\n  root: {cfg.lake.root}\nstages:\n  near_dedup:\n    bands: 99\n")
    assert main(["--snapshot", "nothing", "--config", str(path)]) == 2
    with pytest.raises(SystemExit):
        main(["--snapshot", "../etc"])


def test_index_with_another_scheme_is_refused(make_config, corpus):
    cfg = make_config(stages=STAGES)
    lake = cfg.open_lake()
    commit_input(lake, "x1", corpus)
    run_near_dedup(cfg, "x1", engine="local")
    commit_input(lake, "x2", corpus[:3])
    other = make_config(stages={"near_dedup": {"seed": 7}})
    with pytest.raises(ValueError, match="scheme"):
        run_near_dedup(other, "x2", engine="local")
    with pytest.raises(StageNotCommitted):
        run_near_dedup(make_config(stages={"near_dedup": {"index_snapshots": ["missing"]}}), "x2", engine="local")
    assert lake.commit_info("x2", "near_dedup") is None  # nothing committed by the refused runs


def test_empty_and_unicode_inputs(make_config):
    recs = [record("u/a", "a.py", "é = '✓' * 3\nprint(é, 'naïve 😀 text here')\n"),
            record("u/b", "b.py", "é = '✓' * 3\nprint(é, 'naïve 😀 text here')\n# copy\n"),
            record("u/c", "c.py", "")]
    cfg = make_config(stages=STAGES)
    commit_input(cfg.open_lake(), "u", recs)
    run_near_dedup(cfg, "u", engine="local")
    out = outputs(cfg.open_lake(), "u")
    assert len(out["kept"]) == 2 and out["dups"][0][:3] == ("u/b", "u/a", "repo")
    commit_input(cfg.open_lake(), "empty", [])
    run_near_dedup(cfg, "empty", engine="local")
    assert cfg.open_lake().read_table("empty", "near_dedup", "files").num_rows == 0
    assert isinstance(cfg.open_lake().read_table("empty", "near_dedup", "duplicates"), pa.Table)


def test_a_failed_run_leaves_the_committed_partition_and_a_rerun_replaces_it(make_config, corpus, monkeypatch):
    from spark_jobs.near_dedup import local

    cfg = make_config(stages=STAGES)
    lake = cfg.open_lake()
    commit_input(lake, "f", corpus)
    run_near_dedup(cfg, "f", engine="local")
    before = outputs(lake, "f"), lake.commit_info("f", "near_dedup").attempt

    def killed(*args, **kwargs):
        raise RuntimeError("executor lost")

    monkeypatch.setattr(local, "dedup_table", killed)
    with pytest.raises(RuntimeError, match="executor lost"):
        run_near_dedup(cfg, "f", engine="local")
    assert (outputs(lake, "f"), lake.commit_info("f", "near_dedup").attempt) == before
    monkeypatch.undo()
    run_near_dedup(cfg, "f", engine="local")
    assert outputs(lake, "f") == before[0] and lake.commit_info("f", "near_dedup").attempt != before[1]
