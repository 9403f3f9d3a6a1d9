"""Which discovered repositories are crawled, and which also give commit data: thresholds from config.

Both rules are datatrove-style predicates returning ``(keep, reason)``; the reason names the first threshold a
repository missed and doubles as the drop metric. "Days active" is the span from the repository's creation to
its last push before the snapshot's end (the report gives the threshold, not the definition).
"""

from __future__ import annotations

from datetime import datetime

from spark_jobs.crawl.github.api import RepoMeta
from spark_jobs.crawl.github.config import SelectionConfig


def days_active(meta: RepoMeta, period_end: datetime) -> int:
    """Days from creation to the last push, counting no push after the period's end.

    >>> from datetime import timezone
    >>> t = lambda d: datetime(2026, 1, 1, tzinfo=timezone.utc) + __import__("datetime").timedelta(days=d)
    >>> meta = RepoMeta("a/b", 1, 1, None, "main", t(0), t(400), False, False, "")
    >>> days_active(meta, t(150)), days_active(meta, t(500))
    (150, 400)
    """
    if meta.created_at is None:
        return 0
    last = min(meta.pushed_at or meta.created_at, period_end)
    return max(0, (last - meta.created_at).days)


def select_for_files(meta: RepoMeta, push_events: int, cfg: SelectionConfig) -> tuple[bool, str]:
    """Whether the repository's files are crawled for this snapshot."""
    if push_events < cfg.min_push_events:
        return False, "too_few_push_events"
    if meta.fork and not cfg.include_forks:
        return False, "fork"
    if meta.archived and not cfg.include_archived:
        return False, "archived"
    if meta.stars < cfg.min_stars:
        return False, "too_few_stars"
    if meta.forks < cfg.min_forks:
        return False, "too_few_forks"
    return True, "selected"


def needs_commit_count(meta: RepoMeta, cfg: SelectionConfig, period_end: datetime) -> bool:
    """Whether the cheap thresholds pass, so the commit count (an extra API call) is worth asking for."""
    return (meta.stars >= cfg.commits_min_stars and meta.forks >= cfg.commits_min_forks
            and days_active(meta, period_end) >= cfg.commits_min_days_active)


def select_for_commits(meta: RepoMeta, commit_count: int, cfg: SelectionConfig,
                       period_end: datetime) -> tuple[bool, str]:
    """The report's commit-data rule: enough stars, forks, commits and days of activity.

    >>> from datetime import timezone, timedelta
    >>> t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    >>> meta = RepoMeta("a/b", 150, 12, "MIT", "main", t0, t0 + timedelta(days=300), False, False, "")
    >>> cfg = SelectionConfig()
    >>> select_for_commits(meta, 250, cfg, t0 + timedelta(days=365)), select_for_commits(meta, 99, cfg, t0)
    ((True, 'commit_eligible'), (False, 'commits_too_few_days_active'))
    """
    if meta.stars < cfg.commits_min_stars:
        return False, "commits_too_few_stars"
    if meta.forks < cfg.commits_min_forks:
        return False, "commits_too_few_forks"
    if days_active(meta, period_end) < cfg.commits_min_days_active:
        return False, "commits_too_few_days_active"
    if commit_count < cfg.commits_min_commits:
        return False, "commits_too_few_commits"
    return True, "commit_eligible"
