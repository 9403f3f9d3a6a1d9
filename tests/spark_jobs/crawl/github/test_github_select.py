"""Selection thresholds: which repositories are crawled, which also give commit data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from spark_jobs.crawl.github.api import RepoMeta
from spark_jobs.crawl.github.config import GithubConfig, SelectionConfig
from spark_jobs.crawl.github.select import needs_commit_count, select_for_commits, select_for_files

T0 = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2026, 10, 1, tzinfo=UTC)


def meta(**kw) -> RepoMeta:
    base = dict(full_name="a/b", stars=150, forks=20, license="MIT", default_branch="main", created_at=T0,
                pushed_at=T0 + timedelta(days=400), archived=False, fork=False, clone_url="")
    return RepoMeta(**{**base, **kw})


@pytest.mark.parametrize("kw, pushes, expected", [
    ({}, 3, "selected"),
    ({}, 0, "too_few_push_events"),
    ({"fork": True}, 3, "fork"),
    ({"stars": 4}, 3, "too_few_stars"),
    ({"forks": 0}, 3, "too_few_forks"),
])
def test_file_selection(kw, pushes, expected):
    cfg = SelectionConfig(min_push_events=1, min_stars=5, min_forks=1)
    assert select_for_files(meta(**kw), pushes, cfg)[1] == expected


def test_archived_repositories_follow_the_switch():
    assert select_for_files(meta(archived=True), 1, SelectionConfig())[0]
    assert select_for_files(meta(archived=True), 1, SelectionConfig(include_archived=False)) == (False, "archived")


@pytest.mark.parametrize("kw, commits, expected", [
    ({}, 100, "commit_eligible"),
    ({"stars": 99}, 500, "commits_too_few_stars"),
    ({"forks": 9}, 500, "commits_too_few_forks"),
    ({"created_at": END - timedelta(days=99), "pushed_at": END}, 500, "commits_too_few_days_active"),
    ({}, 99, "commits_too_few_commits"),
])
def test_the_reports_commit_rule_by_default(kw, commits, expected):
    keep, reason = select_for_commits(meta(**kw), commits, SelectionConfig(), END)
    assert reason == expected and keep == (expected == "commit_eligible")


def test_commit_count_is_only_asked_when_the_cheap_thresholds_pass():
    assert needs_commit_count(meta(), SelectionConfig(), END)
    assert not needs_commit_count(meta(stars=10), SelectionConfig(), END)


def test_unknown_config_keys_are_errors():
    with pytest.raises(ValueError, match="min_starz"):
        GithubConfig.model_validate({"selection": {"min_starz": 1}})
