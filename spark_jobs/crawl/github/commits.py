"""Commit history of a repository for commit training samples, from a bare, size-filtered clone.

``git clone --bare --filter=blob:limit=N`` fetches commits, trees and the blobs up to ``max_blob_bytes``; no
bigger blob is ever downloaded. Every later git command runs with fetching switched off (no lazy fetch from the
promisor remote), so a diff cannot pull a large binary in behind the filter's back: a change to a file whose blob
was filtered out is recorded with its status and no diff, flagged ``truncated``. Servers that refuse filters (a
plain ``git daemon``) get a full bare clone instead, which gives the same records.

Per commit in the period (by committer date): message, author date, every parent (a merge is recorded, its
changes against the first parent: what it brought into the mainline), changed paths with status, the unified
diff per file cut at ``max_diff_bytes`` (flagged ``truncated``), ``changes_truncated`` when more files changed
than ``max_files_per_commit``, and the README and directory tree before the commit, which the Seed-Coder report
puts into a commit sample's input. Output bytes that are not UTF-8 are replaced (U+FFFD).

Unusual repositories get their own outcome at once: ``empty_repository`` (nothing to clone),
``shallow_repository`` (a history cut short would report its oldest commit's whole tree as added),
``head_not_found``; every git command has a time bound (``git_timeout_s``). One commit that fails is a reject
(``commit_error`` with the exception's type), and the others are kept.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from lake.faults import isolated
from spark_jobs.crawl.github.config import CommitLimits

log = logging.getLogger(__name__)

ALLOWED_SCHEMES = ("https", "http", "file")
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": ":".join(ALLOWED_SCHEMES), "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1"}
# After the clone: no transport is allowed, so git cannot fetch a filtered-out blob lazily; it fails instead.
_OFFLINE_ENV = {**_GIT_ENV, "GIT_ALLOW_PROTOCOL": "none"}
FULL_DEPTH = 2**31 - 1


class CommitError(RuntimeError):
    """A repository's history could not be read; ``reason`` names why (the repository's drop reason)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _git(args: list[str], *, cwd: Path | None, timeout: float, check: bool = True) -> bytes:
    """Run git; with ``cwd`` (an existing clone) it runs offline: nothing more is downloaded."""
    env = {**os.environ, **(_GIT_ENV if cwd is None else _OFFLINE_ENV)}
    try:
        done = subprocess.run(["git", "-c", "core.quotePath=false", *args], cwd=cwd, env=env, timeout=timeout,
                              capture_output=True, check=False)
    except subprocess.TimeoutExpired:
        raise CommitError("git_timeout", f"git {args[0]} ran past {timeout:.0f}s") from None
    if done.returncode != 0 and check:
        raise CommitError("git_failed", f"git {args[0]}: {done.stderr.decode(errors='replace').strip()[-300:]}")
    return done.stdout


def check_clone_url(url: str) -> str:
    """Refuse clone URLs outside http(s)/file (the URL comes from an API answer, so it is untrusted).

    >>> check_clone_url("https://github.com/a/b.git")
    'https://github.com/a/b.git'
    >>> check_clone_url("ext::sh -c touch% /tmp/x")
    Traceback (most recent call last):
    ...
    spark_jobs.crawl.github.commits.CommitError: bad_clone_url: 'ext::sh -c touch% /tmp/x' is not an http(s) or file URL
    """
    if urlsplit(url).scheme not in ALLOWED_SCHEMES or url.startswith("-"):
        raise CommitError("bad_clone_url", f"{url[:200]!r} is not an http(s) or file URL")
    return url


def clone_bare(url: str, dest: Path, timeout: float,
               max_blob_bytes: int = CommitLimits().max_blob_bytes) -> Path:
    """A bare clone without blobs over ``max_blob_bytes``; refuses an empty or a shallow source at once."""
    # --depth with the largest value git takes: the whole history of a normal source, and a shallow source is
    # cloned at once and seen as shallow (without it, a filtered clone of a shallow source negotiates forever).
    command = ["clone", "--quiet", "--bare", f"--filter=blob:limit={max_blob_bytes}", "--no-tags",
               f"--depth={FULL_DEPTH}", "--", check_clone_url(url), str(dest)]
    try:
        _git(command, cwd=None, timeout=timeout)
    except CommitError as err:
        # A server on git's dumb HTTP protocol (static files) knows neither --depth nor --filter: clone it whole.
        # GitHub speaks the smart protocol; a mirror or test server may not.
        if "dumb http transport does not support shallow" not in err.detail:
            raise
        log.warning("%s: dumb HTTP transport, cloning without --depth (and without the blob filter)", url[:200])
        shutil.rmtree(dest, ignore_errors=True)
        _git([a for a in command if not a.startswith("--depth=")], cwd=None, timeout=timeout)
    if not _git(["for-each-ref", "--count=1", "--format=%(objectname)"], cwd=dest, timeout=timeout).strip():
        raise CommitError("empty_repository", f"{url[:200]} has no commits")
    if _git(["rev-parse", "--is-shallow-repository"], cwd=dest, timeout=timeout).strip() == b"true":
        raise CommitError("shallow_repository", f"{url[:200]} serves a shallow history: parents are missing, so "
                                                "the oldest commits would look like whole trees added")
    return dest


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _cut(text: str, limit: int) -> tuple[str, bool]:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes without splitting a character.

    >>> _cut("héllo", 2), _cut("abc", 5)
    (('h', True), ('abc', False))
    """
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text, False
    return raw[:limit].decode("utf-8", errors="ignore"), True


def list_period_commits(git_dir: Path, head: str, start: datetime, end: datetime, limits: CommitLimits) -> list[dict]:
    """Commits reachable from ``head`` committed in [start, end), merges included, newest first."""
    args = ["log", "--format=%H%x00%P%x00%aI%x00%B%x1e", f"--since={start.isoformat()}",
            f"--until={end.isoformat()}", head]
    if limits.max_commits_per_repo:
        args.insert(1, f"--max-count={limits.max_commits_per_repo}")
    out = []
    for record in _git(args, cwd=git_dir, timeout=limits.git_timeout_s).split(b"\x1e"):
        record = record.lstrip(b"\n")
        if not record:
            continue
        sha, parents, date, message = record.split(b"\x00", 3)
        when = datetime.fromisoformat(_text(date)).astimezone(UTC)
        parent_list = _text(parents).split()
        out.append({"sha": _text(sha), "parent_sha": parent_list[0] if parent_list else None,
                    "parents": parent_list, "author_date": when, "message": _text(message).rstrip("\n")})
    return out


def missing_blobs(git_dir: Path, head: str, timeout: float) -> frozenset[str]:
    """Blobs the size filter left out of the clone, listed from the local trees without fetching anything."""
    listing = _git(["rev-list", "--objects", "--missing=print", head], cwd=git_dir, timeout=timeout)
    return frozenset(_text(line[1:]) for line in listing.split(b"\n") if line.startswith(b"?"))


def _range(parent: str | None, sha: str) -> list[str]:
    return [parent, sha] if parent else ["--root", sha]


def _oversized_paths(git_dir: Path, parent: str | None, sha: str, missing: frozenset[str],
                     timeout: float) -> set[str]:
    """Changed paths whose old or new blob was filtered out (read from trees only)."""
    if not missing:
        return set()
    raw = _git(["diff-tree", "-r", "--no-renames", "--no-commit-id", "--raw", "-z", *_range(parent, sha)],
               cwd=git_dir, timeout=timeout).split(b"\x00")
    paths = set()
    for meta, path in zip(raw[0::2], raw[1::2], strict=False):
        fields = meta.split()
        if len(fields) >= 4 and (_text(fields[2]) in missing or _text(fields[3]) in missing):
            paths.add(_text(path))
    return paths


def _name_status(git_dir: Path, parent: str | None, sha: str, timeout: float,
                 renames: bool = True) -> list[tuple[str, str]]:
    """(status letter, path) of each changed file, in diff-tree order (renames report the new path)."""
    args = ["diff-tree", "-r", "-M" if renames else "--no-renames", "--no-commit-id", "--name-status", "-z",
            *_range(parent, sha)]
    fields = _git(args, cwd=git_dir, timeout=timeout).split(b"\x00")
    changes, i = [], 0
    while i < len(fields) and fields[i]:
        status = _text(fields[i])
        if status[0] in "RC":
            changes.append((status[0], _text(fields[i + 2])))
            i += 3
        else:
            changes.append((status[0], _text(fields[i + 1])))
            i += 2
    return changes


def _file_diffs(git_dir: Path, parent: str | None, sha: str, timeout: float, renames: bool = True,
                skip: set[str] = frozenset()) -> list[str]:
    """The unified diff of each changed file not in ``skip``, in the same order as :func:`_name_status`."""
    args = ["diff-tree", "-p", "-r", "-M" if renames else "--no-renames", "--no-color", "--no-commit-id",
            "--no-ext-diff", *_range(parent, sha)]
    if skip:
        args += ["--", *[f":(exclude,literal){path}" for path in sorted(skip)]]
    diffs: list[list[str]] = []
    for line in _text(_git(args, cwd=git_dir, timeout=timeout)).splitlines(keepends=True):
        if line.startswith("diff --git "):
            diffs.append([])
        if diffs:
            diffs[-1].append(line)
    return ["".join(d) for d in diffs]


def commit_changes(git_dir: Path, repo: str, commit: dict, missing: frozenset[str],
                   limits: CommitLimits) -> tuple[list[dict], bool]:
    """(changes, whether files beyond ``max_files_per_commit`` were left out) of one commit."""
    parent, sha, timeout = commit["parent_sha"], commit["sha"], limits.git_timeout_s
    oversized = _oversized_paths(git_dir, parent, sha, missing, timeout)
    # Rename detection compares contents, which a filtered-out blob does not have: plain adds/deletes then.
    renames = not oversized
    statuses = _name_status(git_dir, parent, sha, timeout, renames)
    diffs = iter(_file_diffs(git_dir, parent, sha, timeout, renames, oversized))
    changes = []
    for status, path in statuses:
        if path in oversized:
            changes.append({"path": path, "status": status, "diff": None, "truncated": True})
            continue
        diff = next(diffs, None)
        if diff is None:
            raise CommitError("diff_mismatch", f"{repo}@{sha}: fewer diffs than changed paths")
        text, truncated = _cut(diff, limits.max_diff_bytes)
        changes.append({"path": path, "status": status, "diff": text, "truncated": truncated})
    if next(diffs, None) is not None:
        raise CommitError("diff_mismatch", f"{repo}@{sha}: more diffs than changed paths")
    return changes[: limits.max_files_per_commit], len(changes) > limits.max_files_per_commit


def _tree_and_readme(git_dir: Path, parent: str | None, missing: frozenset[str],
                     limits: CommitLimits) -> tuple[str | None, str | None]:
    """The directory listing and root README of ``parent`` (None, None for a root commit)."""
    if parent is None:
        return None, None
    timeout = limits.git_timeout_s
    paths = _git(["ls-tree", "-r", "--name-only", "-z", parent], cwd=git_dir, timeout=timeout).split(b"\x00")
    tree = "\n".join(_text(p) for p in paths[: limits.max_tree_entries] if p)
    readme = None
    root = _git(["ls-tree", "-z", parent], cwd=git_dir, timeout=timeout).split(b"\x00")
    candidates = []
    for entry in root:
        if not entry:
            continue
        meta, name = entry.split(b"\t", 1)
        _mode, kind, oid = meta.split(b" ")
        if kind == b"blob" and _text(name).lower().startswith("readme") and _text(oid) not in missing:
            candidates.append((_text(name).lower() != "readme.md", _text(name), _text(oid)))
    if candidates:
        _, _, oid = min(candidates)
        blob = _git(["cat-file", "blob", oid], cwd=git_dir, timeout=timeout)
        readme, _ = _cut(_text(blob[: limits.max_readme_bytes + 4]), limits.max_readme_bytes)
    return tree, readme


@dataclass
class CrawledCommits:
    rows: list[dict]  # COMMITS rows, newest first
    rejects: list[dict] = field(default_factory=list)  # REJECTS rows of commits that failed alone


def commit_records(git_dir: Path, repo: str, head: str, start: datetime, end: datetime,
                   limits: CommitLimits) -> CrawledCommits:
    """COMMITS rows of ``repo`` for the period, newest first; a commit that fails is a reject, not a failure."""
    if not _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{head}^{{commit}}"], cwd=git_dir,
                timeout=limits.git_timeout_s, check=False).strip():
        raise CommitError("head_not_found", f"{repo}: {head[:40]} is not a commit of the clone")
    missing = missing_blobs(git_dir, head, limits.git_timeout_s)
    out = CrawledCommits([])
    for commit in list_period_commits(git_dir, head, start, end, limits):
        sha = commit["sha"]
        built, error = isolated("commit_error", f"{repo}@{sha}", _record, git_dir, repo, commit, missing, limits)
        if error is None:
            out.rows.append(built)
        else:
            out.rejects.append({"repo": repo, "path": f"commit {sha}", "reason": error.reason,
                                "detail": error.detail, "size_bytes": None})
    return out


def _record(git_dir: Path, repo: str, commit: dict, missing: frozenset[str], limits: CommitLimits) -> dict:
    changes, cut = commit_changes(git_dir, repo, commit, missing, limits)
    tree, readme = _tree_and_readme(git_dir, commit["parent_sha"], missing, limits)
    return {"repo": repo, **commit, "readme": readme, "tree": tree, "changes": changes, "changes_truncated": cut}


def crawl_commits(clone_url: str, repo: str, head: str, start: datetime, end: datetime, limits: CommitLimits,
                  workdir: Path) -> CrawledCommits:
    """Clone ``clone_url`` into ``workdir`` and return its period's commits (the clone is left for the caller)."""
    git_dir = clone_bare(clone_url, workdir / "repo.git", limits.git_timeout_s, limits.max_blob_bytes)
    crawled = commit_records(git_dir, repo, head, start, end, limits)
    log.info("%s: %d commits in [%s, %s), %d failed", repo, len(crawled.rows), start.date(), end.date(),
             len(crawled.rejects))
    return crawled
