"""Commit history from a bare, size-filtered clone of a local git repository made in the test, and the hostile
repositories (a large binary, merges, a commit over max_files_per_commit, an empty and a shallow source, a
commit that fails alone) built here with git."""

from __future__ import annotations

import random
import subprocess
import time
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
    crawled = crawl_commits(f"file://{source}", "octo/tools", git(source, "rev-parse", "main"), SEP, OCT,
                            CommitLimits(max_diff_bytes=4_000), tmp_path)
    rows = crawled.rows
    assert crawled.rejects == []
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
    clone = clone_bare(f"file://{source}", tmp_path / "c.git", 60, max_blob_bytes=0)
    assert git(clone, "rev-parse", "--is-bare-repository") == "true"
    assert git(clone, "config", "remote.origin.promisor") == "true"
    missing = [line for line in git(clone, "rev-list", "--objects", "--all", "--missing=print").splitlines()
               if line.startswith("?")]
    assert missing, "blobs are fetched on demand, not with the clone"


def test_root_commit_has_no_parent_readme_or_tree(source, tmp_path):
    clone = clone_bare(f"file://{source}", tmp_path / "c.git", 60)
    aug = datetime(2026, 8, 1, tzinfo=UTC)
    [root] = commit_records(clone, "octo/tools", "main", aug, SEP, CommitLimits()).rows
    assert root["parent_sha"] is None and root["readme"] is None and root["tree"] is None
    assert {c["status"] for c in root["changes"]} == {"A"}


def test_merges_are_recorded_with_all_parents_and_renames_reported(tmp_path):
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
    rows = commit_records(clone, "o/m", "main", SEP, OCT, CommitLimits(max_files_per_commit=5)).rows
    assert [r["message"] for r in rows] == ["Merge branch 'side'", "main work", "rename", "base"]
    merge = rows[0]
    assert merge["parents"] == [git(repo, "rev-parse", "main^1"), git(repo, "rev-parse", "main^2")]
    assert merge["parent_sha"] == merge["parents"][0]
    assert [(c["path"], c["status"]) for c in merge["changes"]] == [("b.py", "R")], "vs the first parent"
    assert all(len(r["parents"]) == 1 for r in rows[1:3]) and rows[3]["parents"] == []
    rename = rows[2]["changes"]
    assert rename == [{"path": "b.py", "status": "R", "diff": rename[0]["diff"], "truncated": False}]


def test_max_commits_and_max_files(source, tmp_path):
    clone = clone_bare(f"file://{source}", tmp_path / "c.git", 60)
    rows = commit_records(clone, "o/t", "main", SEP, NOV,
                          CommitLimits(max_commits_per_repo=1, max_files_per_commit=1)).rows
    assert len(rows) == 1 and rows[0]["message"] == "October work" and len(rows[0]["changes"]) == 1
    assert rows[0]["changes_truncated"] is False, "one file changed: nothing cut"


def test_a_commit_cut_at_max_files_per_commit_is_flagged(source, tmp_path):
    clone = clone_bare(f"file://{source}", tmp_path / "c.git", 60)
    rows = commit_records(clone, "o/t", "main", SEP, OCT, CommitLimits(max_files_per_commit=2)).rows
    by_message = {r["message"].split("\n")[0]: r for r in rows}
    cut = by_message["Drop decoder, add a big generated file"]
    assert len(cut["changes"]) == 2 and cut["changes_truncated"] is True
    assert by_message["Add decoder and encoder"]["changes_truncated"] is False


def _objects_bytes(git_dir) -> int:
    return sum(p.stat().st_size for p in (git_dir / "objects").rglob("*") if p.is_file())


def test_a_large_binary_is_never_downloaded(tmp_path):
    """The blob filter holds for the diffs too: the 3 MB blob is neither in the clone nor fetched later."""
    big = bytes(random.Random(0).randbytes(3_000_000))
    repo = make_repo(tmp_path / "b", [("2026-09-01T00:00:00Z", {"a.py": b"x = 1\n"}, "base"),
                                      ("2026-09-02T00:00:00Z", {"a.py": b"x = 2\n", "model.bin": big}, "add model"),
                                      ("2026-09-03T00:00:00Z", {"model.bin": big[::-1]}, "retrain")])
    crawled = crawl_commits(f"file://{repo}", "o/b", git(repo, "rev-parse", "main"), SEP, OCT,
                            CommitLimits(max_blob_bytes=100_000), tmp_path)
    clone = tmp_path / "repo.git"
    assert _objects_bytes(clone) < 100_000, "no blob over max_blob_bytes reached the clone"
    added, retrained = (next(r for r in crawled.rows if r["message"] == m) for m in ("add model", "retrain"))
    changes = {c["path"]: c for c in added["changes"]}
    assert changes["model.bin"] == {"path": "model.bin", "status": "A", "diff": None, "truncated": True}
    assert changes["a.py"]["diff"].endswith("-x = 1\n+x = 2\n") and not changes["a.py"]["truncated"]
    assert retrained["changes"] == [{"path": "model.bin", "status": "M", "diff": None, "truncated": True}]
    missing = [line for line in git(clone, "rev-list", "--objects", "--all", "--missing=print").splitlines()
               if line.startswith("?")]
    assert len(missing) == 2, "both versions of the binary are still missing after the diffs"


def test_an_empty_repository_is_its_own_outcome(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "--bare")
    with pytest.raises(CommitError) as err:
        clone_bare(f"file://{empty}", tmp_path / "c.git", 60)
    assert err.value.reason == "empty_repository"


def test_a_shallow_source_is_refused_quickly(source, tmp_path):
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{source}", str(shallow)], check=True,
                   capture_output=True)
    git(shallow, "config", "uploadpack.allowfilter", "true")
    t0 = time.monotonic()
    with pytest.raises(CommitError) as err:
        crawl_commits(f"file://{shallow}", "o/s", git(shallow, "rev-parse", "HEAD"), SEP, NOV,
                      CommitLimits(git_timeout_s=60), tmp_path / "w")
    assert err.value.reason == "shallow_repository"
    assert time.monotonic() - t0 < 60, "refused at once, not after a clone loop"


def test_a_head_missing_from_the_clone_is_its_own_outcome(source, tmp_path):
    clone = clone_bare(f"file://{source}", tmp_path / "c.git", 60)
    with pytest.raises(CommitError) as err:
        commit_records(clone, "o/t", "0" * 40, SEP, OCT, CommitLimits())
    assert err.value.reason == "head_not_found"


def test_one_failing_commit_is_a_reject_and_the_others_are_kept(source, tmp_path, monkeypatch):
    from spark_jobs.crawl.github import commits

    clone = clone_bare(f"file://{source}", tmp_path / "c.git", 60)
    poisoned = git(source, "rev-parse", "main~2")
    real = commits.commit_changes

    def poison(git_dir, repo, commit, missing, limits):
        if commit["sha"] == poisoned:
            raise RecursionError("maximum recursion depth exceeded")
        return real(git_dir, repo, commit, missing, limits)

    monkeypatch.setattr(commits, "commit_changes", poison)
    crawled = commit_records(clone, "o/t", "main", SEP, NOV, CommitLimits())
    assert [r["message"].split("\n")[0] for r in crawled.rows] == ["October work",
                                                                     "Drop decoder, add a big generated file"]
    assert crawled.rejects == [{"repo": "o/t", "path": f"commit {poisoned}", "reason": "commit_error",
                                "detail": "RecursionError: maximum recursion depth exceeded", "size_bytes": None}]


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


def test_a_source_on_gits_dumb_http_protocol_is_cloned_whole(source, tmp_path):
    """A static-file (dumb HTTP) server knows neither --depth nor --filter; the image smoke's fake world is one. The
    clone falls back to a whole clone instead of failing as git_failed."""
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    subprocess.run(["git", "clone", "--quiet", "--bare", str(source), str(served / "tools.git")], check=True)
    subprocess.run(["git", "update-server-info"], cwd=served / "tools.git", check=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/tools.git"
        clone = clone_bare(url, tmp_path / "c.git", 60)
        assert git(clone, "rev-parse", "main") == git(source, "rev-parse", "main")
        crawled = crawl_commits(url, "octo/tools", git(source, "rev-parse", "main"), SEP, OCT, CommitLimits(),
                                tmp_path / "work")
        assert crawled.rejects == [] and len(crawled.rows) == 2
    finally:
        server.shutdown()
