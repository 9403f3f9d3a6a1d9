"""The per-repository work that runs on executors: a tarball into file records, a clone into commit records.

Every job first asks the :class:`FetchCache`; only a miss touches the network. A result is cached only when
complete, and a failure comes back as an outcome with a named reason instead of an exception, so one broken
repository never fails the Spark task that carries a hundred good ones. That holds for the unforeseen too: a job
that raises anything (a name the cache cannot encode, a bug) is isolated by :func:`lake.faults.isolated` into a
``fetch_error`` outcome with the exception's type, which the driver counts against ``item_failures``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from lake.faults import isolated
from lake.schemas import sha256_hex
from lake.storage import open_storage
from spark_jobs.crawl.file_rules import FileRules
from spark_jobs.crawl.github.api import GitHubClient, GitHubError, token_from_environment
from spark_jobs.crawl.github.commits import CommitError, crawl_commits
from spark_jobs.crawl.github.config import GithubConfig
from spark_jobs.crawl.github.fetch_cache import FetchCache, fingerprint
from spark_jobs.crawl.github.tarball import ExtractedFile, extract_all

log = logging.getLogger(__name__)


def count_lines(text: str) -> int:
    """Lines of a text, a last line without newline included.

    >>> count_lines(""), count_lines("a"), count_lines("a\\n"), count_lines("a\\nb")
    (0, 1, 1, 2)
    """
    return text.count("\n") + (0 if text.endswith("\n") or not text else 1)


@dataclass(frozen=True)
class FetchJob:
    kind: str  # "tarball" | "commits"
    repo: str
    sha: str
    clone_url: str = ""


@dataclass
class FetchOutcome:
    kind: str
    repo: str
    sha: str
    status: str  # cached | downloaded | failed
    key: str | None = None
    reason: str | None = None
    detail: str | None = None
    compressed_bytes: int = 0
    records: int = 0
    seconds: float = 0.0
    error_type: str | None = None  # set when the job raised (an isolated failure, counted against the cap)
    item_failures: list[dict] = field(default_factory=list)  # REJECTS rows of items of the job that failed alone


@dataclass(frozen=True)
class FetchSettings:
    """Everything an executor needs. The token travels inside the task (never printed: ``repr=False``), because
    executors of a running session do not see environment variables the driver got later; an executor whose
    settings carry none reads its own environment."""

    github: str
    rules: str
    lake_root: str
    s3_endpoint_url: str | None
    s3_region: str
    period_start: str
    period_end: str
    period: str
    token: str | None = field(default=None, repr=False)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FetchSettings:
        return cls(**json.loads(text))


def make_cache(storage, gh: GithubConfig, rules: FileRules) -> FetchCache:
    return FetchCache(storage, gh.cache_prefix,
                      tarball_fp=fingerprint(rules.model_dump(), gh.archive.model_dump(exclude={"download_attempts"})),
                      commits_fp=fingerprint(gh.commits.model_dump(exclude={"git_timeout_s"})))


def tarball_rows(repo: str, sha: str, extraction) -> list[dict]:
    rows = []
    for item in [*extraction.files, *extraction.rejects]:
        if isinstance(item, ExtractedFile):
            raw = item.text.encode("utf-8")
            rows.append({"repo": repo, "commit": sha, "kind": "file", "path": item.path, "language": item.language,
                         "content": item.text, "sha256": sha256_hex(raw), "size_bytes": len(raw),
                         "num_lines": count_lines(item.text), "reason": None, "detail": None})
        else:
            rows.append({"repo": repo, "commit": sha, "kind": "reject", "path": item.path, "language": None,
                         "content": None, "sha256": None, "size_bytes": item.size_bytes, "num_lines": None,
                         "reason": item.reason, "detail": item.detail})
    return rows


class Fetcher:
    def __init__(self, gh: GithubConfig, rules: FileRules, cache: FetchCache, client: GitHubClient,
                 period_start: datetime, period_end: datetime, period: str):
        self.gh = gh
        self.rules = rules
        self.cache = cache
        self.client = client
        self.period_start = period_start
        self.period_end = period_end
        self.period = period

    def run(self, job: FetchJob) -> FetchOutcome:
        t0 = time.monotonic()
        outcome, error = isolated("fetch_error", f"{job.kind} {job.repo}@{job.sha[:12]}",
                                  self._tarball if job.kind == "tarball" else self._commits, job)
        if error is not None:
            outcome = FetchOutcome(job.kind, job.repo, job.sha, "failed", None, error.reason, error.detail,
                                   error_type=error.error_type)
        outcome.seconds = round(time.monotonic() - t0, 3)
        return outcome

    def _tarball(self, job: FetchJob) -> FetchOutcome:
        key = self.cache.tarball_key(job.repo, job.sha)
        if self.cache.has(key):
            return FetchOutcome("tarball", job.repo, job.sha, "cached", key)
        failure, downloaded = None, 0
        for attempt in range(1, self.gh.archive.download_attempts + 1):
            try:
                with self.client.tarball(job.repo, job.sha) as stream:
                    extraction = extract_all(stream, self.rules, self.gh.archive)
            except GitHubError as err:
                return FetchOutcome("tarball", job.repo, job.sha, "failed", None, "fetch_failed", str(err)[:500],
                                    downloaded)
            downloaded += extraction.compressed_bytes
            if extraction.failure is None:
                rows = tarball_rows(job.repo, job.sha, extraction)
                self.cache.put_tarball(job.repo, job.sha, rows)
                return FetchOutcome("tarball", job.repo, job.sha, "downloaded", key, None, None, downloaded,
                                    len(extraction.files))
            failure = extraction.failure
            log.warning("%s@%s: %s (attempt %d of %d)", job.repo, job.sha[:12], failure, attempt,
                        self.gh.archive.download_attempts)
            if failure.reason not in ("truncated_archive", "corrupt_archive"):
                break
        return FetchOutcome("tarball", job.repo, job.sha, "failed", None, failure.reason, failure.detail[:500],
                            downloaded)

    def _commits(self, job: FetchJob) -> FetchOutcome:
        key = self.cache.commits_key(job.repo, job.sha, self.period)
        if self.cache.has(key):
            return FetchOutcome("commits", job.repo, job.sha, "cached", key, records=self.cache.num_rows(key),
                                item_failures=self.cache.commit_rejects(key))
        with tempfile.TemporaryDirectory(prefix="seedcoder-clone-") as workdir:
            try:
                crawled = crawl_commits(job.clone_url, job.repo, job.sha, self.period_start, self.period_end,
                                        self.gh.commits, Path(workdir))
            except CommitError as err:
                return FetchOutcome("commits", job.repo, job.sha, "failed", None, err.reason, err.detail[:500])
        self.cache.put_commits(job.repo, job.sha, self.period, crawled.rows, crawled.rejects)
        return FetchOutcome("commits", job.repo, job.sha, "downloaded", key, records=len(crawled.rows),
                            item_failures=crawled.rejects)


def fetch_partition(jobs: Iterator[tuple], settings_json: str) -> Iterator[dict]:
    """Spark ``mapPartitions`` body: run each (kind, repo, sha, clone_url) job, yield its outcome as a dict."""
    settings = FetchSettings.from_json(settings_json)
    gh = GithubConfig.model_validate_json(settings.github)
    rules = FileRules.model_validate_json(settings.rules)
    storage = open_storage(settings.lake_root, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
    client = GitHubClient(gh.api, token=settings.token or token_from_environment(gh.api))
    fetcher = Fetcher(gh, rules, make_cache(storage, gh, rules), client, datetime.fromisoformat(settings.period_start),
                      datetime.fromisoformat(settings.period_end), settings.period)
    try:
        for job in jobs:
            outcome = fetcher.run(FetchJob(*job))
            log.info("%s %s@%s: %s %s", outcome.kind, outcome.repo, outcome.sha[:12], outcome.status,
                     outcome.reason or "")
            yield asdict(outcome)
    finally:
        client.close()
