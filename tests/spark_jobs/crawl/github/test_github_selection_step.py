"""The driver's selection step against the fake GitHub: metadata, head SHA, commit eligibility, drop reasons."""

from __future__ import annotations

import time

import pytest
from fake_github import FakeRepo, Fault, git, make_repo

from spark_jobs.crawl.github.api import GitHubClient, RateLimitExceeded
from spark_jobs.crawl.github.config import ApiConfig, GithubConfig, SelectionConfig
from spark_jobs.crawl.github.stage import select_repositories, snapshot_period

TOKEN = "test-token-123"


@pytest.fixture
def setup(fake_github, tmp_path):
    src = make_repo(tmp_path / "src", [(f"2026-09-0{d}T00:00:00Z", {"a.py": f"x = {d}\n".encode()}, f"c{d}")
                                       for d in range(1, 4)])
    fake_github.add_repo(FakeRepo("py/ok", src, stars=200, forks=20))
    fake_github.add_repo(FakeRepo("py/small", src, stars=3, forks=0))
    fake_github.add_repo(FakeRepo("py/broken", src))
    fake_github.fault("/api/repos/py/broken", *[Fault(500)] * 10)
    gh = GithubConfig(api=ApiConfig(base_url=f"{fake_github.url}/api", max_attempts=2, backoff_s=0.01),
                      selection=SelectionConfig(min_stars=5, commits_min_commits=3))
    client = GitHubClient(gh.api, token=TOKEN, sleep=lambda s: None)
    return {"gh": gh, "client": client, "head": git(src, "rev-parse", "main"), "fake": fake_github}


def test_selection_records_metadata_and_reasons(setup):
    result = select_repositories(setup["client"], setup["gh"], snapshot_period("2026-09"),
                                 [("py/ok", 5), ("py/small", 2), ("py/broken", 1), ("py/gone", 1)])
    [ok] = result["selected"]
    assert (ok["repo"], ok["sha"], ok["commits"], ok["stars"]) == ("py/ok", setup["head"], True, 200)
    assert result["reasons"] == {"api_error": 1, "commit_eligible": 1, "repo_unavailable": 1, "selected": 1,
                                 "too_few_stars": 1}


def test_a_rate_limit_beyond_the_wait_bound_fails_the_step(setup):
    setup["fake"].fault("/api/repos/py/ok", Fault(403, {"X-RateLimit-Remaining": "0",
                                                        "X-RateLimit-Reset": str(int(time.time()) + 99_999)}))
    with pytest.raises(RateLimitExceeded):
        select_repositories(setup["client"], setup["gh"], snapshot_period("2026-09"), [("py/ok", 5)])
