"""Discovery on Spark: push counts summed over hours, the most active first, too many broken hours fail clearly."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest

from spark_jobs.crawl.github.config import GithubConfig, SelectionConfig
from spark_jobs.crawl.github.stage import Period, discover

pytestmark = pytest.mark.spark
START = datetime(2026, 9, 1, tzinfo=UTC)
PERIOD = Period("t", START, START + timedelta(hours=6))


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
    result = discover(spark, gh, PERIOD)
    assert result["candidates"] == [("c/three", 5), ("a/one", 3)]
    assert result["hours"] == {"ok": 3, "corrupt": 1, "missing": 2}
    assert result["malformed_lines"] == 3 and [h for h, _ in result["corrupt_hours"]] == ["2026-09-01-2"]


def test_max_repos_keeps_the_most_active(spark, mirror):
    gh = GithubConfig(gharchive_url=str(mirror), max_missing_hours=3, selection=SelectionConfig(max_repos=1))
    assert discover(spark, gh, PERIOD)["candidates"] == [("c/three", 5)]


def test_too_many_broken_hours_fail_with_their_names(spark, mirror):
    gh = GithubConfig(gharchive_url=str(mirror), max_missing_hours=2)
    with pytest.raises(FileNotFoundError, match=r"3 of 6 hourly files .*'2026-09-01-2'"):
        discover(spark, gh, PERIOD)
