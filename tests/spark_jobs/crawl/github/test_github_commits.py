"""Commit history from a bare, blob-filtered clone of a local git repository made in the test."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import pytest
from code_corpus import stdlib_files
from fake_github import git, make_repo

from spark_jobs.crawl.github.commits import CommitError, clone_bare, commit_records, crawl_commits
from spark_jobs.crawl.github.config import CommitLimits

SEP, OCT, NOV = (datetime(2026, m, 1, tzinfo=UTC) for m in (9, 10, 11))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    code = stdlib_files("json", 4)
    paths = sorted(code)
    big = "\n".join(f"line_{i} = {i}" for i in range(3000)) + "\n"
    return make_repo(tmp_path_factory.mktemp("src") / "repo", [
        ("2026-08-20T10:00:00Z", {"README.md": b"# Tools\nOld readme\n", paths[0]: code[paths[0]]}, "initial"),
        ("2026-09-02T10:00:00Z", {paths[1]: code[paths[1]], paths[2]: code[paths[2]]}, "Add decoder and encoder"),
        ("2026-09-15T10:00:00Z", {"README.md": b"# Tools\nNew readme\n", paths[1]: None,
                                  "gen/big.py": big.encode()}, "Drop decoder, add a big generated file\n\nBody."),
        ("2026-10-03T10:00:00Z", {paths[3]: code[paths[3]]}, "October work"),
    ])


def test_commits_in_the_period_with_everything_a_sample_needs(source, tmp_path):
    rows = crawl_commits(f"file://{source}", "octo/tools", git(source, "rev-parse", "main"), SEP, OCT,
                         CommitLimits(max_diff_bytes=4_000), tmp_path)
    assert [r["message"] for r in rows] == ["Drop decoder, add a big generated file\n\nBody.",
                                            "Add decoder and encoder"]
    newest, older = rows
    shas = git(source, "rev-list", "main").split()
    assert newest["sha"] == shas[1] and newest["parent_sha"] == shas[2] and older["parent_sha"] == shas[3]
    assert newest["author_date"] == datetime(2026, 9, 15, 10, tzinfo=UTC)
    assert newest["readme"] == "# Tools\nOld readme\n", "the README before the commit, not after"
    assert newest["tree"].split("\n") == sorted(["README.md", *[p for p in stdlib_files("json", 4)][:3]])
    changes = {c["path"]: c for c in newest["changes"]}
    assert {p: c["status"] for p, c in changes.items()} == {
        "README.md": "M", "gen/big.py": "A", sorted(stdlib_files("json", 4))[1]: "D"}
    assert changes["gen/big.py"]["truncated"] and len(changes["gen/big.py"]["diff"].encode()) <= 4_000
    assert changes["README.md"]["diff"].endswith("-Old readme\n+New readme\n")
    assert not changes["README.md"]["truncated"]


def test_the_clone_is_bare_and_blob_filtered(source, tmp_path):
    clone = clone_bare(f"file://{source}", tmp_path / "c.git", 60)
    assert git(clone, "rev-parse", "--is-bare-repository") == "true"
    assert git(clone, "config", "remote.origin.promisor") == "true"
    missing = [line for line in git(clone, "rev-list", "--objects", "--all", "--missing=print").splitlines()
               if line.startswith("?")]
    assert missing, "blobs are fetched on demand, not with the clone"


def test_root_commit_has_no_parent_readme_or_tree(source, tmp_path):
    clone = clone_bare(f"file://{source}", tmp_path / "c.git", 60)
    aug = datetime(2026, 8, 1, tzinfo=UTC)
    [root] = commit_records(clone, "octo/tools", "main", aug, SEP, CommitLimits())
    assert root["parent_sha"] is None and root["readme"] is None and root["tree"] is None
    assert {c["status"] for c in root["changes"]} == {"A"}


def test_merges_are_skipped_and_renames_reported(tmp_path):
    repo = make_repo(tmp_path / "m", [("2026-09-01T00:00:00Z", {"a.py": b"x = 1\n" * 20}, "base")])
    git(repo, "checkout", "-q", "-b", "side")
    git(repo, "mv", "a.py", "b.py")
    git(repo, "commit", "-q", "-m", "rename", date="2026-09-02T00:00:00Z")
    git(repo, "checkout", "-q", "main")
    (repo / "c.py").write_text("y = 2\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main work", date="2026-09-03T00:00:00Z")
    git(repo, "merge", "-q", "--no-edit", "side", date="2026-09-04T00:00:00Z")
    clone = clone_bare(f"file://{repo}", tmp_path / "c.git", 60)
    rows = commit_records(clone, "o/m", "main", SEP, OCT, CommitLimits(max_files_per_commit=5))
    assert [r["message"] for r in rows] == ["main work", "rename", "base"]
    rename = rows[1]["changes"]
    assert rename == [{"path": "b.py", "status": "R", "diff": rename[0]["diff"], "truncated": False}]


def test_max_commits_and_max_files(source, tmp_path):
    clone = clone_bare(f"file://{source}", tmp_path / "c.git", 60)
    rows = commit_records(clone, "o/t", "main", SEP, NOV, CommitLimits(max_commits_per_repo=1, max_files_per_commit=1))
    assert len(rows) == 1 and rows[0]["message"] == "October work" and len(rows[0]["changes"]) == 1


@pytest.mark.parametrize("url, reason", [("ext::sh -c id", "bad_clone_url"), ("--upload-pack=id", "bad_clone_url"),
                                         ("file:///nonexistent/repo.git", "git_failed")])
def test_bad_clone_urls_fail_with_a_reason(url, reason, tmp_path):
    with pytest.raises(CommitError) as err:
        clone_bare(url, tmp_path / "c.git", 60)
    assert err.value.reason == reason


def test_git_timeout_is_a_reason(source, tmp_path, monkeypatch):
    def slow(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], 1)

    monkeypatch.setattr(subprocess, "run", slow)
    with pytest.raises(CommitError) as err:
        clone_bare(f"file://{source}", tmp_path / "c.git", 1)
    assert err.value.reason == "git_timeout"
