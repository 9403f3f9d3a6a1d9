"""The crawl stage on the GitHub source, end to end on Spark against the fake GitHub: three monthly snapshots."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pytest
from scenario import MONTHS, TOKEN, build, write_config

from lake.schemas import file_id
from lake.stage import Lake
from spark_jobs.crawl.__main__ import main

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def world(tmp_path_factory, spark):
    from fake_github import FakeGitHub

    root = tmp_path_factory.mktemp("github")
    with FakeGitHub(token=TOKEN) as fake:
        build(fake, root / "repos")
        config = write_config(root / "config.yaml", fake, root / "lake")
        mp = pytest.MonkeyPatch()
        mp.setenv("GITHUB_TOKEN", TOKEN)
        codes = [main(["--snapshot", month, "--config", str(config)]) for month in MONTHS]
        yield {"fake": fake, "lake": Lake.at(str(root / "lake")), "config": config, "codes": codes}
        mp.undo()


def rows(lake, month, dataset):
    return lake.read_table(month, "crawl", dataset).to_pylist()


def test_three_months_make_three_partitions(world):
    lake = world["lake"]
    assert world["codes"] == [0, 0, 0]
    assert lake.snapshots() == list(MONTHS)
    for month in MONTHS:
        assert set(lake.require(month, "crawl").datasets) == {"files", "rejects", "repos", "commits"}


def test_datasets_have_the_lake_schemas_types(world):
    from lake.schemas import COMMITS, FILES, REJECTS, REPOS

    lake = world["lake"]
    for dataset, schema in [("files", FILES), ("commits", COMMITS), ("repos", REPOS), ("rejects", REJECTS)]:
        table = lake.read_table("2026-10", "crawl", dataset)
        assert table.schema.names == schema.names, dataset
        for field in schema:
            got = table.schema.field(field.name).type
            if pa.types.is_list(field.type):
                assert got.value_type == field.type.value_type, (dataset, field.name)
            else:
                assert got == field.type, (dataset, field.name, got)


def test_files_are_each_months_state_with_lineage(world):
    lake = world["lake"]
    aug, oct_ = rows(lake, "2026-08", "files"), rows(lake, "2026-10", "files")
    aug_json = {f["path"] for f in aug if f["repo"] == "py/jsonkit"}
    oct_json = {f["path"] for f in oct_ if f["repo"] == "py/jsonkit"}
    assert len(aug_json) == 3 and len(oct_json) == 5 and aug_json < oct_json
    for f in aug + oct_:
        assert f["id"] == file_id(f["repo"], f["commit"], f["path"])
        assert f["sha256"] == hashlib.sha256(f["content"].encode()).hexdigest()
        assert f["size_bytes"] == len(f["content"].encode())
    jsonkit = next(f for f in oct_ if f["repo"] == "py/jsonkit")
    assert (jsonkit["license"], jsonkit["stars"], jsonkit["forks"]) == ("MIT", 500, 40)
    assert len({f["id"] for f in oct_}) == len(oct_), "no duplicate records"
    repos = {r["repo"]: r for r in rows(lake, "2026-10", "repos")}
    assert repos["py/jsonkit"]["num_files"] == 5 and repos["py/jsonkit"]["source"].startswith("file://")


def test_every_hostile_case_is_dropped_with_a_named_reason(world):
    lake = world["lake"]
    rejects = rows(lake, "2026-08", "rejects")
    hostile = {r["path"]: r["reason"] for r in rejects if r["repo"] == "evil/hostile"}
    assert hostile["evil-hostile-0000000/../../escape.py"] == "path_traversal"
    assert hostile["/etc/cron.d/evil.sh"] == "absolute_path"
    assert hostile["etc_dir"] == hostile["passwd.py"] == "symlink"
    assert hostile["src/huge_sparse.py"] == "oversize"
    assert hostile["dev_null"] == "special_file" and hostile["hard.py"] == "hardlink"
    assert hostile["data/weights.json"] == "lfs_pointer"
    assert hostile["evil-hostile-0000000/caf\ufffd.py"] == "invalid_path", "a non-UTF-8 name no longer fails the task"
    truncated = [r for r in rejects if r["repo"] == "evil/truncated"]
    assert [(r["path"], r["reason"]) for r in truncated] == [("", "truncated_archive")]
    files = rows(lake, "2026-08", "files")
    assert {f["path"] for f in files if f["repo"] == "evil/hostile"} == {
        "src/json/__init__.py", "src/json/decoder.py", "src/json/encoder.py"}
    assert not [f for f in files if f["repo"] == "evil/truncated"]
    stats = lake.stats("2026-08", "crawl")
    assert stats["drop_reasons"]["truncated_archive"] == 1 and stats["drop_reasons"]["symlink"] == 2
    selection = stats["metrics"]["repositories"]["selection"]
    assert selection["fork"] == 1 and selection["repo_unavailable"] == 1
    gharchive = stats["metrics"]["gharchive"]
    assert gharchive["malformed_lines"] == 2 and gharchive["hours"]["ok"] == 2


def test_a_truncated_hour_is_reported_not_counted(world):
    stats = world["lake"].stats("2026-09", "crawl")
    assert stats["metrics"]["gharchive"]["hours"]["corrupt"] == 1
    [(hour, detail)] = stats["metrics"]["gharchive"]["corrupt_hours"]
    assert hour == "2026-09-20-5" and "EOFError" in detail


def test_commits_of_eligible_repositories_per_month(world):
    lake = world["lake"]
    # py/jsonkit has a single commit by the end of August: below commits_min_commits=2 that month.
    for month, expected in [("2026-08", {"Mail basics", "More mail"}),
                            ("2026-09", {"Add the encoder"}),
                            ("2026-10", {"Add the scanner", "October mail"})]:
        commits = rows(lake, month, "commits")
        assert {c["message"] for c in commits} == expected, month
        assert all(c["repo"] in ("py/jsonkit", "py/mailer") for c in commits)
    [scanner] = [c for c in rows(lake, "2026-10", "commits") if c["message"] == "Add the scanner"]
    assert scanner["readme"] == "# jsonkit\n" and "README.md" in scanner["tree"].split("\n")
    assert {c["path"]: c["status"] for c in scanner["changes"]} == {"README.md": "M",
                                                                    "src/json/scanner.py": "A"}


def test_rate_limit_and_502_were_ridden_out(world):
    fake = world["fake"]
    assert fake.requests["/api/repos/py/mailer"] >= 2 and fake.requests["/api/repos/py/jsonkit"] >= 2
    assert all(auth == f"Bearer {TOKEN}" for auth in fake.seen_auth)


def test_a_repository_at_the_same_sha_is_never_downloaded_twice(world):
    downloads = world["fake"].tarball_downloads
    assert downloads["py/mailer"] == 2, "Aug and Oct heads; Sep is the Aug head, served from the cache"
    assert downloads["py/jsonkit"] == 3 and downloads["py/tinyhttp"] == 2
    sep = world["lake"].stats("2026-09", "crawl")["metrics"]["repositories"]
    assert sep["from_cache"] == 1 and sep["fetched"] == 2


def test_rerunning_one_month_replaces_only_that_partition(world):
    lake, fake = world["lake"], world["fake"]
    before = {m: lake.require(m, "crawl").attempt for m in MONTHS}
    content = sorted((f["id"], f["sha256"]) for f in rows(lake, "2026-09", "files"))
    downloads = dict(fake.tarball_downloads)
    assert main(["--snapshot", "2026-09", "--config", str(world["config"])]) == 0
    after = {m: lake.require(m, "crawl").attempt for m in MONTHS}
    assert after["2026-08"] == before["2026-08"] and after["2026-10"] == before["2026-10"]
    assert after["2026-09"] != before["2026-09"]
    assert sorted((f["id"], f["sha256"]) for f in rows(lake, "2026-09", "files")) == content
    assert dict(fake.tarball_downloads) == downloads, "the re-run downloads nothing"
    assert json.loads(json.dumps(lake.stats("2026-09", "crawl")["metrics"]["repositories"]))["fetched"] == 0
