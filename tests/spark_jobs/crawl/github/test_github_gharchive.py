"""GH Archive discovery: push counts per repository, malformed lines skipped, broken hours reported whole."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

from fake_github import push_event

from spark_jobs.crawl.github.gharchive import hour_names, scan_hour


def test_hours_of_a_month_are_all_named():
    hours = hour_names(datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
    assert len(hours) == 30 * 24 and hours[0] == "2026-09-01-0" and hours[-1] == "2026-09-30-23"


def test_push_events_are_counted_and_malformed_lines_skipped(fake_github):
    fake_github.add_hour("2026-09-03-7", [
        push_event("octo/a", "2026-09-03T07:00:01Z"),
        push_event("octo/a", "2026-09-03T07:10:00Z"),
        push_event("octo/b", "2026-09-03T07:11:00Z"),
        {"type": "WatchEvent", "repo": {"name": "octo/c"}},
        "{not json",
        '{"type": "PushEvent", "repo": {"name": "../../etc/passwd"}}',
        '{"type": "PushEvent", "repo": {}}',
        "[1, 2, 3]",
        "",
    ])
    scan = scan_hour(f"{fake_github.url}/gharchive", "2026-09-03-7")
    assert scan.status == "ok"
    assert dict(scan.pushes) == {"octo/a": 2, "octo/b": 1}
    assert scan.events == 4 and scan.malformed == 4


def test_invalid_utf8_line_is_malformed_not_fatal(fake_github):
    fake_github.hours["2026-09-03-8"] = gzip.compress(
        b'{"type": "PushEvent", "repo": {"name": "octo/\xff"}}\n' + b'{"type": "PushEvent", "repo": {"name": "o/k"}}\n')
    scan = scan_hour(f"{fake_github.url}/gharchive", "2026-09-03-8")
    assert dict(scan.pushes) == {"o/k": 1} and scan.malformed == 1


def test_missing_and_truncated_hours_contribute_nothing(fake_github):
    fake_github.add_hour("2026-09-03-9", [push_event("octo/a", "2026-09-03T09:00:00Z")] * 500, truncate=True)
    cut = scan_hour(f"{fake_github.url}/gharchive", "2026-09-03-9")
    assert cut.status == "corrupt" and not cut.pushes and "EOFError" in cut.detail
    missing = scan_hour(f"{fake_github.url}/gharchive", "2026-09-03-10")
    assert missing.status == "missing" and not missing.pushes


def test_a_local_directory_mirror_works_too(tmp_path):
    (tmp_path / "2026-09-03-7.json.gz").write_bytes(
        gzip.compress(b'{"type": "PushEvent", "repo": {"name": "x/y"}}\n'))
    assert dict(scan_hour(str(tmp_path), "2026-09-03-7").pushes) == {"x/y": 1}
    assert scan_hour(str(tmp_path), "2026-09-03-8").status == "missing"
