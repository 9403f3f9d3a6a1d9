"""The typed `stages.crawl.github` section: where GitHub and GH Archive are, and how hard to pull on them.

Every default is the production choice; the local profile and the tests point the URLs at a fake GitHub on
127.0.0.1. Selection thresholds follow the Seed-Coder report where it gives numbers (the commit-data rule:
>= 100 stars, >= 10 forks, >= 100 commits, >= 100 days active) and are plain knobs where it does not.
"""

from __future__ import annotations

from pydantic import Field

from lake.config import StrictModel


class ApiConfig(StrictModel):
    # REST API root (GitHub Enterprise: https://HOST/api/v3).
    base_url: str = "https://api.github.com"
    # Airflow connection whose password (or extra "token") is the token; tried before the environment variable.
    conn_id: str = "github_default"
    # Environment variable holding the token when there is no Airflow connection (never logged).
    token_env: str = "GITHUB_TOKEN"
    # Concurrent requests per process (GitHub asks clients not to hammer; its secondary limit is ~100 concurrent).
    max_concurrency: int = Field(8, ge=1, le=100)
    # Attempts per request on 5xx answers and connection resets, with exponential backoff from backoff_s.
    max_attempts: int = Field(6, ge=1)
    backoff_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    # Longest sleep accepted for a rate-limit reset or Retry-After; a longer wait fails the request clearly.
    max_rate_limit_wait_s: float = Field(3900.0, ge=0)
    # Seconds to connect / between bytes read.
    timeout_s: float = Field(60.0, gt=0)
    # Sent as User-Agent (GitHub rejects requests without one).
    user_agent: str = "seedcoder-platform-crawler"


class SelectionConfig(StrictModel):
    # Files of a repository are crawled when it has at least this activity in the period and these counts.
    min_push_events: int = Field(1, ge=0)
    min_stars: int = Field(0, ge=0)
    min_forks: int = Field(0, ge=0)
    include_forks: bool = False
    include_archived: bool = True
    # At most this many repositories per snapshot, the most active first (0: no cap).
    max_repos: int = Field(0, ge=0)
    # Commit data: the report's rule (>= 100 stars, >= 10 forks, >= 100 commits, >= 100 days active).
    commits_min_stars: int = Field(100, ge=0)
    commits_min_forks: int = Field(10, ge=0)
    commits_min_commits: int = Field(100, ge=0)
    commits_min_days_active: int = Field(100, ge=0)


class ArchiveLimits(StrictModel):
    # Compressed bytes read from one repository tarball before it is refused as too large.
    max_archive_bytes: int = Field(2_000_000_000, ge=1)
    # Sum of the declared sizes of the members actually read, against decompression bombs.
    max_total_bytes: int = Field(4_000_000_000, ge=1)
    # Members (files, directories, links) in one tarball.
    max_members: int = Field(500_000, ge=1)
    # Downloads of one tarball before a cut or corrupt archive drops the repository for this run.
    download_attempts: int = Field(3, ge=1)


class CommitLimits(StrictModel):
    # Bytes of unified diff kept per changed file; longer diffs are cut and flagged truncated.
    max_diff_bytes: int = Field(20_000, ge=1)
    # Changed files kept per commit (huge vendoring commits are cut, flagged per file).
    max_files_per_commit: int = Field(200, ge=1)
    # Bytes of the pre-commit README and number of paths of the pre-commit directory tree.
    max_readme_bytes: int = Field(20_000, ge=0)
    max_tree_entries: int = Field(2_000, ge=0)
    # Commits kept per repository per snapshot, newest first (0: all in the period).
    max_commits_per_repo: int = Field(5_000, ge=0)
    # Largest blob the clone downloads (git's blob:limit filter): a change to a bigger file is recorded with its
    # status and no diff (truncated), and its content is never fetched.
    max_blob_bytes: int = Field(1_000_000, ge=0)
    # Seconds one git command may run (clone of a big repository included).
    git_timeout_s: float = Field(1800.0, gt=0)


class GithubConfig(StrictModel):
    api: ApiConfig = ApiConfig()
    # Root of the GH Archive hourly files `YYYY-MM-DD-H.json.gz` (a URL or a local directory).
    gharchive_url: str = "https://data.gharchive.org"
    # Hourly files that may be missing (404) before discovery fails: GH Archive has known gaps.
    max_missing_hours: int = Field(48, ge=0)
    selection: SelectionConfig = SelectionConfig()
    archive: ArchiveLimits = ArchiveLimits()
    commits: CommitLimits = CommitLimits()
    # Collect commit data for commit-eligible repositories.
    crawl_commits: bool = True
    # Lake-relative folder of the fetch cache: a repository fetched at a SHA is never downloaded again.
    cache_prefix: str = "_cache/github"
    # Spark partitions of discovery (hours per task = hours / partitions); 0: 4 x default parallelism.
    discovery_partitions: int = Field(0, ge=0)
    # Spark partitions of the fetch (repositories per task = selected / partitions); 0: 4 x default parallelism.
    fetch_partitions: int = Field(0, ge=0)
