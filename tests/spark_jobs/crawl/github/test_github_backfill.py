"""`airflow backfill create` over three months of the crawl DAG, run by a real scheduler, against the fake GitHub;
the dedup DAG runs on the crawl Asset as the months come in; then a release over the three months.

Airflow 3 runs backfills in the scheduler, and its LocalExecutor workers talk to the execution API, so the test
starts both (tests/airflow_home.py) on a throw-away AIRFLOW_HOME with SQLite, and stops every process it started.
The crawl and dedup DAGs are unpaused after the backfill is created (the scheduler starts runs of unpaused DAGs
only). Each crawl run's `snapshot` task resolves the month from the data interval; its `crawl` task runs
`python -m spark_jobs.crawl` with the profile from $SEEDCODER_CONFIG (the GitHub source, pointed at the fake).
Each finished crawl emits the crawl Asset, which starts a dedup run (or adds its month to a queued one); the
dedup run waits until the earlier months' near dedup is committed. The committed records must be exactly those
of three sequential runs (month 1 crawl + dedup, then month 2, then month 3), whatever the timing was.

Nothing here depends on the day the test runs: the fake world is laid on the three months that ended before the
current month, and a cluster policy of this Airflow home (`airflow_local_settings.py`, Airflow's own hook for
altering DAGs at load) bounds the production crawl DAG's run window to exactly those months, so the scheduler's
catchup can only add runs for months the backfill already covered, on any date.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime

import pytest
import yaml
from fake_github import FakeGitHub
from scenario import TOKEN, build, months_before, write_config

from lake.config import load_config
from lake.stage import Lake, Partition, StageRun
from tests.airflow_home import AirflowHome, bound_run_window

pytestmark = [pytest.mark.spark, pytest.mark.slow]
DEDUP_STAGES = {"exact_dedup": ("files", "duplicates"), "near_dedup": ("files", "duplicates", "signatures")}


def small_pipeline(config_path) -> None:
    """The dedup and release stages at test size: the near dedup engine in one process (parity-tested with Spark),
    two output parts, a small tokenizer and short rows."""
    cfg = yaml.safe_load(config_path.read_text())
    stages = cfg["stages"]
    stages["near_dedup"].update({"engine": "local", "output_partitions": 2})
    stages["exact_dedup"] = {"output_partitions": 2}
    stages["release"] = {"input_stage": "near_dedup", "output_partitions": 2}
    stages["tokenizer"]["vocab_size"] = 600
    stages["dataset_build"].update({"seq_len": {"file_level": 256, "repo_level": 32768, "commits": 2048},
                                    "parts": 2, "repo_keep_fraction": 1.0})
    config_path.write_text(yaml.safe_dump(cfg))


def wait_for_dedup(airflow: AirflowHome, lake: Lake, months, timeout: float) -> None:
    """Until every month's near dedup is committed and no dedup run is left running or queued."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = airflow.runs("dedup")
        failed = [r for r in runs if r[1] == "failed"]
        assert not failed, f"dedup runs failed: {failed}\n" + airflow.task_logs()
        done = all(lake.commit_info(m, "near_dedup") is not None for m in months)
        if done and runs and all(r[1] == "success" for r in runs):
            return
        time.sleep(3)
    raise AssertionError(f"dedup not done in {timeout:.0f}s; runs: {airflow.runs('dedup')}\n" + airflow.task_logs())
@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    root = tmp_path_factory.mktemp("backfill")
    months = months_before(datetime.now(UTC))
    with FakeGitHub(token=TOKEN) as fake:
        build(fake, root / "repos", months)
        config = write_config(root / "config.yaml", fake, root / "lake")
        small_pipeline(config)
        (root / "airflow").mkdir()
        bound_run_window(root / "airflow", "crawl", months[0], months[-1])
        airflow = AirflowHome(root / "airflow", {"SEEDCODER_CONFIG": str(config), "GITHUB_TOKEN": TOKEN,
                                                 "SEEDCODER_PROFILE": "local"})
        try:
            airflow.cli("db", "migrate")
            airflow.cli("dags", "reserialize")
            airflow.cli("backfill", "create", "--dag-id", "crawl", "--from-date", f"{months[0]}-01",
                        "--to-date", f"{months[-1]}-28", "--max-active-runs", "1")
            # The scheduler starts runs of unpaused DAGs only, backfill runs included. Unpausing after the
            # backfill exists adds no scheduled run: catchup finds every month of the DAG's window taken.
            airflow.cli("dags", "unpause", "crawl")
            airflow.cli("dags", "unpause", "dedup")
            airflow.start("api-server", "--apps", "execution", "--port", str(airflow.port), "--workers", "1")
            airflow.start("scheduler")
            airflow.wait_backfills_done(1, timeout=1500)
            lake = Lake.at(str(root / "lake"))
            wait_for_dedup(airflow, lake, months, timeout=1500)
            airflow.cli("dags", "pause", "dedup")  # a later re-crawl must not start more dedup runs
            yield {"airflow": airflow, "lake": lake, "fake": fake, "months": months, "config": config,
                   "root": root}
        finally:
            airflow.stop()


def test_a_three_month_backfill_makes_three_snapshot_partitions(backfilled):
    airflow, lake, months = backfilled["airflow"], backfilled["lake"], backfilled["months"]
    runs = airflow.runs()
    assert [(d[:10], state, kind) for d, state, kind in runs] == [
        (f"{month}-01", "success", "backfill") for month in months], airflow.task_logs()
    assert lake.snapshots() == list(months)
    for month in months:
        info = lake.require(month, "crawl")
        assert {"files", "commits", "rejects", "repos"} <= set(info.datasets)
        assert info.stats["metrics"]["source"] == "github"
    assert {c["message"] for c in lake.read_table(months[1], "crawl", "commits").to_pylist()} == {"Add the encoder"}


def records(lake: Lake, snapshot: str, stage: str, dataset: str) -> list[dict]:
    table = lake.read_table(snapshot, stage, dataset)
    key = "removed_id" if "removed_id" in table.column_names else "id"
    return sorted(table.to_pylist(), key=lambda r: (r[key], str(r)))


def test_a_backfill_commits_exactly_what_three_sequential_runs_commit(backfilled, spark, tmp_path):
    """The same crawls, deduplicated one month after the other in a second lake, give the same records."""
    from spark_jobs.exact_dedup import ExactDedupConfig, run_exact_dedup
    from spark_jobs.near_dedup.stage import run_near_dedup

    lake, months, airflow = backfilled["lake"], backfilled["months"], backfilled["airflow"]
    sequential_root = tmp_path / "sequential"
    cfg = load_config(backfilled["config"], overrides={"lake": {"root": str(sequential_root)}})
    sequential = cfg.open_lake()
    for month in months:
        shutil.copytree(f"{lake.root}/snapshot={month}/crawl", sequential_root / f"snapshot={month}" / "crawl")
        exact_cfg = cfg.stage("exact_dedup", ExactDedupConfig)
        with StageRun(sequential, month, "exact_dedup") as run:
            run_exact_dedup(run, cfg, exact_cfg)
        run_near_dedup(cfg, month)
    for month in months:
        assert lake.stats(month, "near_dedup")["metrics"]["index_snapshots"] == [m for m in months if m < month]
        for stage, datasets in DEDUP_STAGES.items():
            for dataset in datasets:
                assert records(lake, month, stage, dataset) == records(sequential, month, stage, dataset), \
                    (month, stage, dataset)
    dropped = sum(lake.stats(m, "near_dedup")["drop_reasons"].get("near_duplicate_file", 0) for m in months[1:])
    assert dropped > 0, "later months repeat earlier files: incremental dedup must drop them"
    waits = airflow.query("SELECT count(*) FROM task_reschedule")[0][0]
    print(f"dedup runs: {airflow.runs('dedup')}; sensor reschedules (a month waiting for an earlier one): {waits}")


def test_a_release_over_the_months_has_each_repository_whole_again(backfilled):
    """py/jsonkit gained files every month, so each month's deduplicated snapshot holds a fragment of it; the
    release's repository document holds all of it: its last crawled state, each path taken from the newest
    snapshot that kept that content."""
    from lake import release as rel
    from lake import tokens
    from lake.token_shards import TokenShards
    from spark_jobs.dataset import build, fim
    from spark_jobs.dataset import tokenizer as tok
    from spark_jobs.dataset.documents import decode_document
    from spark_jobs.dataset.repo_concat import split_document
    from spark_jobs.release.stage import cut_release

    lake, months = backfilled["lake"], backfilled["months"]
    cfg = load_config(backfilled["config"])
    fragments = {m: {r["path"] for r in lake.read_table(m, "near_dedup", "files").to_pylist()
                     if r["repo"] == "py/jsonkit"} for m in months}
    assert all(fragments.values()) and sum(map(len, fragments.values())) > max(map(len, fragments.values()))
    manifest = cut_release(cfg, "backfill", snapshots=list(months))
    assert [e.attempt for e in manifest.snapshots] == [lake.require(m, "near_dedup").attempt for m in months]
    release = Partition.release("backfill")
    tok.run(lake, "backfill", cfg.stage("tokenizer", tok.TokenizerConfig))
    with StageRun(lake, release, "dataset_build") as run:
        build.build(run, cfg, cfg.stage("dataset_build", build.DatasetBuildConfig))
    tokenizer = tokens.load(lake, release)
    docs = [split_document(fim.invert(decode_document(tokenizer, ids)))
            for ids in TokenShards(lake, release, "repo_level").documents()]
    last_state = {r["path"]: r for r in lake.read_table(months[-1], "crawl", "files").to_pylist()
                  if r["repo"] == "py/jsonkit"}
    # Dedup kept in py/jsonkit, in one month or another, every file of its last state except those whose content
    # another repository already had (evil/hostile ships copies of json's files): those stay deduplicated.
    kept = {(r["path"], r["sha256"]) for m in months for r in lake.read_table(m, "near_dedup", "files").to_pylist()
            if r["repo"] == "py/jsonkit"}
    expected = {p: r["content"] for p, r in last_state.items() if (p, r["sha256"]) in kept}
    elsewhere = {d["removed_id"] for m in months for d in lake.read_table(m, "near_dedup", "duplicates").to_pylist()}
    elsewhere |= {d["id"] for m in months for d in lake.read_table(m, "exact_dedup", "duplicates").to_pylist()}
    for path in set(last_state) - set(expected):
        ids = {r["id"] for m in months for r in lake.read_table(m, "crawl", "files").to_pylist()
               if r["repo"] == "py/jsonkit" and r["path"] == path and r["sha256"] == last_state[path]["sha256"]}
        assert ids & elsewhere, f"{path} left out of the repository without being a duplicate"
    jsonkit = [doc for doc in docs if {p for p, _c in doc} & set(last_state)]
    assert len(jsonkit) == 1, "one repository, one document"
    assert dict(jsonkit[0]) == expected, "every kept file of the repository's newest state, at that content"
    rows = [r for r in lake.read_table(release, rel.STAGE, "files").to_pylist()
            if r["repo"] == "py/jsonkit" and r["repo_level"]]
    # Each path comes from the newest month that kept its last content (a month whose new file another repository
    # already had, like the encoder evil/hostile shipped a month earlier, contributes nothing).
    kept_in = {m: {(r["path"], r["sha256"]) for r in lake.read_table(m, "near_dedup", "files").to_pylist()
                   if r["repo"] == "py/jsonkit"} for m in months}
    source = {p: max(m for m in months if (p, last_state[p]["sha256"]) in kept_in[m]) for p in expected}
    assert {r["path"]: r["snapshot"] for r in rows} == source
    assert len(set(source.values())) >= 2, "made whole from pieces kept in different months"


def test_rerunning_one_month_replaces_only_that_partition(backfilled):
    airflow, lake, months = backfilled["airflow"], backfilled["lake"], backfilled["months"]
    first, second, third = months
    before = {m: lake.require(m, "crawl").attempt for m in months}
    airflow.cli("backfill", "create", "--dag-id", "crawl", "--from-date", f"{second}-01", "--to-date", f"{second}-01",
                "--reprocess-behavior", "completed", "--max-active-runs", "1")
    airflow.wait_backfills_done(2, timeout=900)
    after = {m: lake.require(m, "crawl").attempt for m in months}
    assert after[first] == before[first] and after[third] == before[third]
    assert after[second] != before[second]
    assert lake.stats(second, "crawl")["metrics"]["repositories"]["fetched"] == 0, "all from the fetch cache"
    assert [kind for _, _, kind in airflow.runs()] == ["backfill"] * 3, "no scheduled run joined the backfill's"
