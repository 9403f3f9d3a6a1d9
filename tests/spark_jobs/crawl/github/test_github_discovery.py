"""Discovery on Spark: push counts summed over hours, the most active first, too many broken hours fail clearly;
a poisoned line is recorded and the job goes on, a systematic failure fails the step."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest

from lake.config import ItemFailurePolicy
from lake.faults import TooManyItemFailures
from spark_jobs.crawl.github.config import GithubConfig, SelectionConfig
from spark_jobs.crawl.github.stage import Period, discover

pytestmark = pytest.mark.spark
START = datetime(2026, 9, 1, tzinfo=UTC)
PERIOD = Period("t", START, START + timedelta(hours=6))
POLICY = ItemFailurePolicy()


def _hour(path, pushes: dict[str, int], truncate: bool = False) -> None:
    lines = "".join(json.dumps({"type": "PushEvent", "repo": {"name": r}}) + "\n"
                    for r, n in pushes.items() for _ in range(n)).encode()
    data = gzip.compress(lines + b"{bad line\n")
    path.write_bytes(data[: len(data) // 2] if truncate else data)


@pytest.fixture
def mirror(tmp_path):
    _hour(tmp_path / "2026-09-01-0.json.gz", {"a/one": 2, "b/two": 1})
    _hour(tmp_path / "2026-09-01-1.json.gz", {"a/one": 1, "c/three": 5})
    _hour(tmp_path / "2026-09-01-2.json.gz", {"a/one": 50}, truncate=True)
    _hour(tmp_path / "2026-09-01-3.json.gz", {"d/four": 1})
    return tmp_path


def test_counts_are_summed_over_hours_and_ordered(spark, mirror):
    gh = GithubConfig(gharchive_url=str(mirror), max_missing_hours=3, selection=SelectionConfig(min_push_events=2))
    result = discover(spark, gh, PERIOD, POLICY)
    assert result["candidates"] == [("c/three", 5), ("a/one", 3)]
    assert result["hours"] == {"ok": 3, "corrupt": 1, "missing": 2}
    assert result["malformed_lines"] == 3 and [h for h, _ in result["corrupt_hours"]] == ["2026-09-01-2"]


def test_max_repos_keeps_the_most_active(spark, mirror):
    gh = GithubConfig(gharchive_url=str(mirror), max_missing_hours=3, selection=SelectionConfig(max_repos=1))
    assert discover(spark, gh, PERIOD, POLICY)["candidates"] == [("c/three", 5)]


def test_too_many_broken_hours_fail_with_their_names(spark, mirror):
    gh = GithubConfig(gharchive_url=str(mirror), max_missing_hours=2)
    with pytest.raises(FileNotFoundError, match=r"3 of 6 hourly files .*'2026-09-01-2'"):
        discover(spark, gh, PERIOD, POLICY)


def test_a_poisoned_line_is_recorded_and_the_good_ones_counted(spark, tmp_path):
    good = "".join(json.dumps({"type": "PushEvent", "repo": {"name": "a/one"}}) + "\n" for _ in range(200))
    (tmp_path / "2026-09-01-0.json.gz").write_bytes(gzip.compress(good.encode() + b"[" * 100_000 + b"\n"))
    gh = GithubConfig(gharchive_url=str(tmp_path), max_missing_hours=6)
    result = discover(spark, gh, PERIOD, POLICY)
    assert result["candidates"] == [("a/one", 200)], "the job committed with every good line"
    failed = result["failed_lines"]
    assert failed["items"] == 201 and failed["failures"] == 1 and failed["by_type"] == {"RecursionError": 1}
    assert failed["examples"][0]["item"] == "2026-09-01-0:line 201"
    assert failed["examples"][0]["reason"] == "gharchive_line_error"


def test_a_systematic_failure_fails_discovery_loudly(spark, tmp_path):
    poisoned = "".join(json.dumps({"type": "PushEvent", "repo": {"name": "a/one"}}) + "\n" for _ in range(50))
    (tmp_path / "2026-09-01-0.json.gz").write_bytes(gzip.compress((poisoned + "[" * 100_000 + "\n") .encode() * 2))
    gh = GithubConfig(gharchive_url=str(tmp_path), max_missing_hours=6)
    with pytest.raises(TooManyItemFailures, match=r"2 of 102 items failed in discovery"):
        discover(spark, gh, PERIOD, POLICY)
