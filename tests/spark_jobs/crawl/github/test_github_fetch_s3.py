"""The executor side of the GitHub fetch on an S3 lake (`weed mini` on loopback): cache and ETags in S3.

Spark reads the cache through `s3a://`, which needs hadoop-aws (in the Spark image, not here), so the assemble step
is covered on the filesystem lake only; everything the executors and the driver's API client write goes through
`lake.storage` and is exercised here against a real S3 server.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from code_corpus import stdlib_files
from fake_github import FakeRepo, git, make_repo

from lake.storage import open_storage
from spark_jobs.crawl.file_rules import FileRules
from spark_jobs.crawl.github.api import EtagCache, GitHubClient
from spark_jobs.crawl.github.config import ApiConfig, GithubConfig
from spark_jobs.crawl.github.fetch import Fetcher, FetchJob, make_cache
from tests.lake.test_storage_s3 import s3_root, s3_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.s3
TOKEN = "test-token-123"


def test_fetch_cache_and_etags_live_in_s3(fake_github, tmp_path, s3_server, s3_root):  # noqa: F811
    src = make_repo(tmp_path / "src", [("2026-09-03T00:00:00Z", stdlib_files("json", 4), "json")])
    fake_github.add_repo(FakeRepo("py/jsonkit", src))
    sha = git(src, "rev-parse", "main")
    storage = open_storage(s3_root, endpoint_url=s3_server)
    gh = GithubConfig(api=ApiConfig(base_url=f"{fake_github.url}/api"))

    def fetcher() -> Fetcher:
        client = GitHubClient(gh.api, token=TOKEN)
        return Fetcher(gh, FileRules(), make_cache(storage, gh, FileRules()), client,
                       datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC), "2026-09")

    first = fetcher().run(FetchJob("tarball", "py/jsonkit", sha))
    assert first.status == "downloaded" and storage.exists(first.key)
    assert fetcher().run(FetchJob("tarball", "py/jsonkit", sha)).status == "cached"
    assert fake_github.tarball_downloads["py/jsonkit"] == 1
    rows = make_cache(storage, gh, FileRules()).read(first.key).to_pylist()
    assert sorted(r["path"] for r in rows) == sorted(stdlib_files("json", 4))

    etags = EtagCache(storage, "_cache/github/etags")
    GitHubClient(gh.api, token=TOKEN, etags=etags).repo("py/jsonkit")
    again = GitHubClient(gh.api, token=TOKEN, etags=etags)
    assert again.repo("py/jsonkit").full_name == "py/jsonkit" and again.counters["not_modified"] == 1
