"""The REST client against a fake GitHub: token handling, rate limits, retries, ETags, endpoints."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pytest
from fake_github import FakeRepo, Fault, make_repo

from lake.storage import LocalStorage
from spark_jobs.crawl.github.api import (
    EtagCache,
    GitHubClient,
    GitHubError,
    RateLimitExceeded,
    token_from_environment,
)
from spark_jobs.crawl.github.config import ApiConfig

TOKEN = "test-token-123"


class FakeClock:
    """Sleeps are recorded and advance the clock instead of waiting."""

    def __init__(self):
        self.now = time.time()
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def time(self) -> float:
        return self.now


def client_for(fake, clock=None, **api) -> GitHubClient:
    clock = clock or FakeClock()
    cfg = ApiConfig(base_url=f"{fake.url}/api", backoff_s=0.5, **api)
    return GitHubClient(cfg, token=TOKEN, sleep=clock.sleep, clock=clock.time)


@pytest.fixture
def repo(fake_github, tmp_path):
    git_dir = make_repo(tmp_path / "r", [
        ("2026-08-05T10:00:00Z", {"a.py": b"x = 1\n"}, "one"),
        ("2026-09-05T10:00:00Z", {"a.py": b"x = 2\n"}, "two"),
        ("2026-10-05T10:00:00Z", {"b.py": b"y = 1\n"}, "three"),
    ])
    return fake_github.add_repo(FakeRepo("octo/tools", git_dir, stars=321, forks=12, license="Apache-2.0"))


def test_metadata_head_and_commit_count(fake_github, repo):
    client = client_for(fake_github)
    meta = client.repo("octo/tools")
    assert (meta.full_name, meta.stars, meta.forks, meta.license, meta.default_branch) == \
        ("octo/tools", 321, 12, "Apache-2.0", "main")
    assert meta.created_at == datetime(2025, 1, 1, tzinfo=UTC)
    shas = [s for s in __import__("fake_github").git(repo.git_dir, "rev-list", "main").split()]
    assert client.head_before("octo/tools", "main", datetime(2026, 9, 1, tzinfo=UTC)) == shas[2]
    assert client.head_before("octo/tools", "main", datetime(2026, 10, 1, tzinfo=UTC)) == shas[1]
    assert client.head_before("octo/tools", "main", datetime(2026, 8, 1, tzinfo=UTC)) is None
    assert client.commit_count("octo/tools", shas[0]) == 3
    assert client.repo("octo/missing") is None


def test_token_is_sent_but_never_logged(fake_github, repo, caplog):
    caplog.set_level(logging.DEBUG)
    fake_github.fault("/api/repos/octo/tools", Fault(502))
    client = client_for(fake_github)
    client.repo("octo/tools")
    assert fake_github.seen_auth[-1] == f"Bearer {TOKEN}"
    assert TOKEN not in caplog.text and TOKEN not in repr(client)
    unauthenticated = GitHubClient(ApiConfig(base_url=f"{fake_github.url}/api"))
    with pytest.raises(GitHubError, match="HTTP 401"):
        unauthenticated.repo("octo/tools")


def test_403_with_reset_time_waits_for_the_reset_then_succeeds(fake_github, repo):
    clock = FakeClock()
    reset = int(clock.now) + 120
    fake_github.fault("/api/repos/octo/tools",
                      Fault(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}))
    client = client_for(fake_github, clock)
    assert client.repo("octo/tools").stars == 321
    assert len(clock.sleeps) == 1 and 119 <= clock.sleeps[0] <= 122
    assert client.counters["rate_limit_waits"] == 1


def test_429_retry_after_is_honoured(fake_github, repo):
    clock = FakeClock()
    fake_github.fault("/api/repos/octo/tools", Fault(429, {"Retry-After": "7"}))
    assert client_for(fake_github, clock).repo("octo/tools") is not None
    assert clock.sleeps == [7.0]


def test_a_reset_too_far_away_fails_clearly(fake_github, repo):
    clock = FakeClock()
    fake_github.fault("/api/repos/octo/tools", Fault(403, {"X-RateLimit-Remaining": "0",
                                                           "X-RateLimit-Reset": str(int(clock.now) + 7200)}))
    with pytest.raises(RateLimitExceeded, match="max_rate_limit_wait_s"):
        client_for(fake_github, clock, max_rate_limit_wait_s=600).repo("octo/tools")


def test_a_403_that_is_not_a_rate_limit_means_unavailable(fake_github, repo):
    fake_github.fault("/api/repos/octo/tools", Fault(403, {"X-RateLimit-Remaining": "4000"}))
    assert client_for(fake_github).repo("octo/tools") is None


def test_502_then_success_backs_off_and_retries(fake_github, repo):
    clock = FakeClock()
    fake_github.fault("/api/repos/octo/tools", Fault(502), Fault(503))
    client = client_for(fake_github, clock)
    assert client.repo("octo/tools").forks == 12
    assert len(clock.sleeps) == 2 and clock.sleeps[1] > clock.sleeps[0] * 0.9
    assert fake_github.requests["/api/repos/octo/tools"] == 3


def test_persistent_5xx_gives_up_after_max_attempts(fake_github, repo):
    fake_github.fault("/api/repos/octo/tools", *[Fault(500)] * 5)
    with pytest.raises(GitHubError, match="HTTP 500 after 3 attempts"):
        client_for(fake_github, max_attempts=3).repo("octo/tools")


def test_connection_reset_mid_answer_is_retried(fake_github, repo):
    clock = FakeClock()
    fake_github.fault("/api/repos/octo/tools", Fault(200, cut_after=5))
    assert client_for(fake_github, clock).repo("octo/tools").stars == 321
    assert len(clock.sleeps) == 1


def test_exhausted_quota_on_a_success_delays_the_next_request(fake_github, repo):
    clock = FakeClock()
    client = client_for(fake_github, clock)
    resp = type("R", (), {"headers": {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(clock.now) + 30)}})
    client._note_quota(resp)
    client.repo("octo/tools")
    assert len(clock.sleeps) == 1 and 29 <= clock.sleeps[0] <= 32


def test_etag_cache_turns_repeat_requests_into_304s(fake_github, repo, tmp_path):
    etags = EtagCache(LocalStorage(tmp_path / "lake"), "_cache/github/etags")
    first = GitHubClient(ApiConfig(base_url=f"{fake_github.url}/api"), token=TOKEN, etags=etags)
    assert first.repo("octo/tools").stars == 321 and first.counters["not_modified"] == 0
    second = GitHubClient(ApiConfig(base_url=f"{fake_github.url}/api"), token=TOKEN, etags=etags)
    assert second.repo("octo/tools").stars == 321
    assert second.counters["not_modified"] == 1


def test_tarball_follows_the_codeload_redirect(fake_github, repo):
    import gzip
    import io
    import tarfile

    sha = __import__("fake_github").git(repo.git_dir, "rev-parse", "main")
    with client_for(fake_github).tarball("octo/tools", sha) as stream:
        names = tarfile.open(fileobj=io.BytesIO(gzip.decompress(stream.read()))).getnames()
    assert f"octo-tools-{sha[:7]}/b.py" in names
    assert fake_github.tarball_downloads["octo/tools"] == 1


def test_bounded_concurrency(fake_github, repo):
    from concurrent.futures import ThreadPoolExecutor

    fake_github.fault("/api/repos/octo/tools", *[Fault(200, delay_s=0.2)] * 6)
    client = client_for(fake_github, max_concurrency=2)
    active, peak = [0], [0]
    original = client.session.request

    def counting(*args, **kwargs):
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        try:
            return original(*args, **kwargs)
        finally:
            active[0] -= 1

    client.session.request = counting
    with ThreadPoolExecutor(6) as pool:
        assert all(m is not None for m in pool.map(lambda _: client.repo("octo/tools"), range(6)))
    assert peak[0] == 2


def test_bad_repository_names_are_refused(fake_github):
    with pytest.raises(ValueError, match="owner/name"):
        client_for(fake_github).repo("no-slash")


def test_token_from_airflow_connection_json_extra():
    env = {"AIRFLOW_CONN_GH": '{"conn_type": "github", "extra": {"token": "from-extra"}}', "GITHUB_TOKEN": "env"}
    assert token_from_environment(ApiConfig(conn_id="gh"), env) == "from-extra"
