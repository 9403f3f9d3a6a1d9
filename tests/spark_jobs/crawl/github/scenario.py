"""A three-month GitHub world on the fake server: real code in real git repositories, plus hostile ones.

The world is laid on any three consecutive months (``MONTHS`` by default); every date in it is a day of one of
them, so a test that needs months already over on today's clock (a backfill) lays it on ``months_before(now)``.

| repository       | what it exercises                                                              |
| ---------------- | ------------------------------------------------------------------------------ |
| py/jsonkit       | commits every month, commit-eligible; 502 before its first metadata answer      |
| py/mailer        | commits Aug and Oct only (same SHA in Sep: never downloaded twice); 403 + reset  |
| py/tinyhttp      | below the commit thresholds: files only                                          |
| evil/hostile     | `../` and absolute paths, symlink to /etc, hard link, device, 1 GB sparse member |
| evil/truncated   | a tarball cut in half: the repository is dropped with `truncated_archive`       |
| someone/fork     | a fork: not selected                                                             |
| gone/away        | in GH Archive, unknown to the API: `repo_unavailable`                            |
"""

from __future__ import annotations

import gzip
import subprocess
import time
from datetime import datetime
from pathlib import Path

import yaml
from code_corpus import hostile_tarball, stdlib_files
from fake_github import FakeGitHub, FakeRepo, Fault, git, make_repo, push_event

REPO = Path(__file__).resolve().parents[4]
TOKEN = "test-token-123"
MONTHS = ("2026-08", "2026-09", "2026-10")


def shift_month(month: str, by: int) -> str:
    """``YYYY-MM`` moved by ``by`` months.

    >>> shift_month("2026-11", 2), shift_month("2026-01", -1)
    ('2027-01', '2025-12')
    """
    index = int(month[:4]) * 12 + int(month[5:7]) - 1 + by
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def months_before(now: datetime) -> tuple[str, str, str]:
    """The three whole months that ended before ``now``'s month began.

    >>> months_before(datetime(2027, 1, 15))
    ('2026-10', '2026-11', '2026-12')
    """
    this = f"{now.year:04d}-{now.month:02d}"
    return shift_month(this, -3), shift_month(this, -2), shift_month(this, -1)


def _files(package: str, n: int) -> list[tuple[str, bytes]]:
    return sorted(stdlib_files(package, n).items())


def build(fake: FakeGitHub, root: Path, months: tuple[str, str, str] = MONTHS) -> dict[str, FakeRepo]:
    js, mail, http = _files("json", 4), _files("email", 9), _files("http", 4)
    first, second, third = months
    before = shift_month(first, -1)
    repos = {
        "py/jsonkit": make_repo(root / "jsonkit", [
            (f"{first}-04T10:00:00Z", dict([("README.md", b"# jsonkit\n"), *js[:2]]), "Start jsonkit"),
            (f"{second}-09T10:00:00Z", dict(js[2:3]), "Add the encoder"),
            (f"{third}-12T10:00:00Z", {**dict(js[3:]), "README.md": b"# jsonkit\nNow with a scanner.\n"},
             "Add the scanner"),
        ]),
        "py/mailer": make_repo(root / "mailer", [
            (f"{first}-06T10:00:00Z", dict(mail[:5]), "Mail basics"),
            (f"{first}-20T10:00:00Z", dict(mail[5:7]), "More mail"),
            (f"{third}-02T10:00:00Z", dict(mail[7:]), "October mail"),
        ]),
        "py/tinyhttp": make_repo(root / "tinyhttp", [
            (f"{before}-01T10:00:00Z", dict(http[:2]), "http client"),
            (f"{second}-01T10:00:00Z", dict(http[2:]), "http server"),
        ]),
        "evil/truncated": make_repo(root / "truncated", [
            (f"{first}-01T10:00:00Z", dict(_files("email", 6)), "Looks normal"),
        ]),
    }
    pushed = f"{third}-20T00:00:00Z"
    out = {
        "py/jsonkit": FakeRepo("py/jsonkit", repos["py/jsonkit"], stars=500, forks=40, license="MIT",
                               pushed_at=pushed),
        "py/mailer": FakeRepo("py/mailer", repos["py/mailer"], stars=150, forks=11, license="Apache-2.0",
                              pushed_at=pushed),
        "py/tinyhttp": FakeRepo("py/tinyhttp", repos["py/tinyhttp"], stars=30, forks=2, license="BSD-3-Clause",
                                pushed_at=pushed),
        "evil/hostile": FakeRepo("evil/hostile", None, stars=5, forks=0, license=None, head="e" * 40,
                                 tarball=hostile_tarball(root / "hostile"), pushed_at=pushed),
        "evil/truncated": FakeRepo("evil/truncated", repos["evil/truncated"], stars=7, forks=1, pushed_at=pushed),
        "someone/fork": FakeRepo("someone/fork", None, fork=True, head="d" * 40, pushed_at=pushed),
    }
    sha = git(repos["evil/truncated"], "rev-parse", "main")
    archive = subprocess.run(["git", "archive", "--format=tar", "--prefix=evil-truncated/", sha],
                             cwd=repos["evil/truncated"], check=True, capture_output=True).stdout
    whole = gzip.compress(archive, mtime=0)
    out["evil/truncated"].tarball = whole[: len(whole) // 2]
    for repo in out.values():
        fake.add_repo(repo)
    active = {first: ["py/jsonkit", "py/mailer", "py/tinyhttp", "evil/hostile", "evil/truncated",
                      "someone/fork", "gone/away"],
              second: ["py/jsonkit", "py/mailer", "py/tinyhttp"],
              third: ["py/jsonkit", "py/mailer", "evil/hostile"]}
    for month, names in active.items():
        events = [push_event(n, f"{month}-15T03:0{i % 10}:00Z") for i, n in enumerate(names * 2)]
        fake.add_hour(f"{month}-15-3", events + ["{truncated json", '{"type": "PushEvent"}'])
        fake.add_hour(f"{month}-16-0", [push_event("py/jsonkit", f"{month}-16T00:00:00Z")])
    fake.add_hour(f"{second}-20-5", [push_event("py/mailer", f"{second}-20T05:00:00Z")] * 50, truncate=True)
    fake.fault("/api/repos/py/jsonkit", Fault(502))
    fake.fault("/api/repos/py/mailer", Fault(403, {"X-RateLimit-Remaining": "0",
                                                   "X-RateLimit-Reset": str(int(time.time()) + 1)}))
    return out


def write_config(path: Path, fake: FakeGitHub, lake_root: Path, **api: object) -> Path:
    base = yaml.safe_load((REPO / "config" / "local.yaml").read_text())
    base["lake"] = {"root": str(lake_root)}
    base["spark"]["shuffle_partitions"] = 4
    base["spark"]["driver_memory"] = "2g"
    crawl = base["stages"].setdefault("crawl", {})
    crawl.update({"source": "github", "output_partitions": 2, "github": {
        "api": {"base_url": f"{fake.url}/api", "backoff_s": 0.2, "max_concurrency": 4, **api},
        "gharchive_url": f"{fake.url}/gharchive",
        "max_missing_hours": 1000,
        "fetch_partitions": 4,
        "selection": {"commits_min_commits": 2},
    }})
    path.write_text(yaml.safe_dump(base))
    return path
