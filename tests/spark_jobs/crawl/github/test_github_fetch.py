"""Per-repository fetch through the lake's cache: downloaded once, failures retried and never cached."""

from __future__ import annotations

import gzip
import subprocess
from datetime import UTC, datetime

import pytest
from code_corpus import stdlib_files
from fake_github import FakeRepo, Fault, git, make_repo

from lake.storage import LocalStorage
from spark_jobs.crawl.file_rules import FileRules
from spark_jobs.crawl.github.api import GitHubClient
from spark_jobs.crawl.github.config import ApiConfig, GithubConfig
from spark_jobs.crawl.github.fetch import Fetcher, FetchJob, FetchSettings, fetch_partition, make_cache

TOKEN = "test-token-123"
SEP, OCT = datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def world(fake_github, tmp_path):
    src = make_repo(tmp_path / "src", [("2026-09-03T00:00:00Z", stdlib_files("json", 4), "json"),
                                       ("2026-09-04T00:00:00Z", {"README.md": b"# hi\n"}, "readme")])
    fake_github.add_repo(FakeRepo("py/jsonkit", src))
    gh = GithubConfig(api=ApiConfig(base_url=f"{fake_github.url}/api", backoff_s=0.01))
    storage = LocalStorage(tmp_path / "lake")
    return {"fake": fake_github, "src": src, "sha": git(src, "rev-parse", "main"), "gh": gh, "storage": storage}


def fetcher(world, rules: FileRules | None = None) -> Fetcher:
    rules = rules or FileRules()
    client = GitHubClient(world["gh"].api, token=TOKEN, sleep=lambda s: None)
    return Fetcher(world["gh"], rules, make_cache(world["storage"], world["gh"], rules), client, SEP, OCT, "2026-09")


def test_a_tarball_is_downloaded_once_then_served_from_the_cache(world):
    job = FetchJob("tarball", "py/jsonkit", world["sha"])
    first = fetcher(world).run(job)
    assert (first.status, first.records) == ("downloaded", 5) and first.compressed_bytes > 0
    again = fetcher(world).run(job)
    assert again.status == "cached" and again.key == first.key
    assert world["fake"].tarball_downloads["py/jsonkit"] == 1
    rows = make_cache(world["storage"], world["gh"], FileRules()).read(first.key).to_pylist()
    assert {r["path"]: r["kind"] for r in rows} == {**{p: "file" for p in stdlib_files("json", 4)},
                                                    "README.md": "file"}


def test_changed_file_rules_do_not_reuse_stale_decisions(world):
    job = FetchJob("tarball", "py/jsonkit", world["sha"])
    fetcher(world).run(job)
    strict = fetcher(world, FileRules(max_file_bytes=5_000)).run(job)
    assert strict.status == "downloaded" and world["fake"].tarball_downloads["py/jsonkit"] == 2


def test_a_connection_cut_mid_download_is_fetched_again(world):
    sha = world["sha"]
    world["fake"].fault(f"/codeload/py/jsonkit/legacy.tar.gz/{sha}", Fault(200, cut_after=300))
    outcome = fetcher(world).run(FetchJob("tarball", "py/jsonkit", sha))
    assert outcome.status == "downloaded" and world["fake"].tarball_downloads["py/jsonkit"] == 2


def test_an_always_truncated_archive_fails_with_its_reason_and_is_not_cached(world):
    archive = subprocess.run(["git", "archive", "--format=tar", "--prefix=p/", world["sha"]], cwd=world["src"],
                             check=True, capture_output=True).stdout
    data = gzip.compress(archive, mtime=0)
    world["fake"].repos["py/jsonkit"].tarball = data[: len(data) // 2]
    job = FetchJob("tarball", "py/jsonkit", world["sha"])
    outcome = fetcher(world).run(job)
    assert (outcome.status, outcome.reason, outcome.key) == ("failed", "truncated_archive", None)
    assert world["fake"].tarball_downloads["py/jsonkit"] == 3, "download_attempts=3"
    world["fake"].repos["py/jsonkit"].tarball = data
    assert fetcher(world).run(job).status == "downloaded", "a failure is retried by the next run"


def test_a_missing_tarball_is_a_fetch_failure(world):
    outcome = fetcher(world).run(FetchJob("tarball", "py/nothere", world["sha"]))
    assert outcome.status == "failed" and outcome.reason == "fetch_failed" and "404" in outcome.detail


def test_commits_are_cached_per_period(world):
    job = FetchJob("commits", "py/jsonkit", world["sha"], f"file://{world['src']}")
    first = fetcher(world).run(job)
    assert (first.status, first.records) == ("downloaded", 2)
    cached = fetcher(world).run(job)
    assert (cached.status, cached.records, cached.item_failures) == ("cached", 2, []), "counts survive the cache"
    bad = fetcher(world).run(FetchJob("commits", "py/x", world["sha"], "ext::sh -c id"))
    assert (bad.status, bad.reason) == ("failed", "bad_clone_url")


def test_fetch_partition_runs_jobs_from_json_settings(world):
    settings = FetchSettings(github=world["gh"].model_dump_json(), rules=FileRules().model_dump_json(),
                             lake_root=str(world["storage"].root), s3_endpoint_url=None, s3_region="us-east-1",
                             period_start=SEP.isoformat(), period_end=OCT.isoformat(), period="2026-09", token=TOKEN)
    assert TOKEN not in repr(settings)
    out = list(fetch_partition(iter([("tarball", "py/jsonkit", world["sha"], "")]), settings.to_json()))
    assert [(o["repo"], o["status"]) for o in out] == [("py/jsonkit", "downloaded")]


def test_a_repository_whose_job_raises_fails_alone_in_its_partition(world, monkeypatch):
    """The old crash: a cache write that cannot encode a name failed every repository of the task."""
    from spark_jobs.crawl.github.fetch_cache import FetchCache

    world["fake"].add_repo(FakeRepo("evil/poison", world["src"]))
    world["fake"].add_repo(FakeRepo("py/other", world["src"]))
    real = FetchCache.put_tarball

    def poison(self, repo, sha, rows):
        if repo == "evil/poison":
            "\udce9".encode("utf-8")
        return real(self, repo, sha, rows)

    monkeypatch.setattr(FetchCache, "put_tarball", poison)
    settings = FetchSettings(github=world["gh"].model_dump_json(), rules=FileRules().model_dump_json(),
                             lake_root=str(world["storage"].root), s3_endpoint_url=None, s3_region="us-east-1",
                             period_start=SEP.isoformat(), period_end=OCT.isoformat(), period="2026-09", token=TOKEN)
    jobs = [("tarball", repo, world["sha"], "") for repo in ("py/jsonkit", "evil/poison", "py/other")]
    out = {o["repo"]: o for o in fetch_partition(iter(jobs), settings.to_json())}
    assert out["py/jsonkit"]["status"] == out["py/other"]["status"] == "downloaded"
    poisoned = out["evil/poison"]
    assert (poisoned["status"], poisoned["reason"], poisoned["error_type"]) == (
        "failed", "fetch_error", "UnicodeEncodeError")
    assert poisoned["key"] is None and "surrogates not allowed" in poisoned["detail"]


def test_isolated_failures_past_the_cap_fail_the_crawl_loudly():
    from lake.config import ItemFailurePolicy
    from lake.faults import TooManyItemFailures
    from spark_jobs.crawl.github.stage import check_fetch_failures

    def outcome(i, error=None):
        return {"kind": "tarball", "repo": f"o/r{i}", "status": "failed" if error else "downloaded", "records": 3,
                "reason": "fetch_error" if error else None, "detail": "TypeError: boom" if error else None,
                "error_type": error, "item_failures": []}

    one_bad = [outcome(i) for i in range(50)] + [outcome(50, "TypeError")]
    assert check_fetch_failures(one_bad, ItemFailurePolicy())["repositories"]["failures"] == 1
    with pytest.raises(TooManyItemFailures, match="2 of 52 items failed in fetch"):
        check_fetch_failures(one_bad + [outcome(51, "TypeError")], ItemFailurePolicy())
