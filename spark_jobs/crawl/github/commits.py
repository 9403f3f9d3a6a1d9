"""Commit history of a repository for commit training samples, from a bare, blob-filtered clone.

``git clone --bare --filter=blob:none`` fetches commits and trees only; git then fetches the blobs a diff needs
in one batch per command (partial clone), so a repository's history costs its trees plus the changed files of
the period, not every version of every file. Servers that refuse filters (a plain ``git daemon``) get a full
bare clone instead, which gives the same records.

Per commit in the period (by committer date, merges excluded: their change against one parent is not one
author's edit): message, author date, first parent, changed paths with status, the unified diff per file cut
at ``max_diff_bytes`` (flagged ``truncated``), and the README and directory tree before the commit, which the
Seed-Coder report puts into a commit sample's input. Output bytes that are not UTF-8 are replaced (U+FFFD).
"""

from __future__ import annotations

import logging
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from spark_jobs.crawl.github.config import CommitLimits

log = logging.getLogger(__name__)

ALLOWED_SCHEMES = ("https", "http", "file")
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": ":".join(ALLOWED_SCHEMES), "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1"}


class CommitError(RuntimeError):
    """A repository's history could not be read; ``reason`` names why (the repository's drop reason)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _git(args: list[str], *, cwd: Path | None, timeout: float) -> bytes:
    env = {**os.environ, **_GIT_ENV}
    try:
        done = subprocess.run(["git", "-c", "core.quotePath=false", *args], cwd=cwd, env=env, timeout=timeout,
                              capture_output=True, check=False)
    except subprocess.TimeoutExpired:
        raise CommitError("git_timeout", f"git {args[0]} ran past {timeout:.0f}s") from None
    if done.returncode != 0:
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


def clone_bare(url: str, dest: Path, timeout: float) -> Path:
    _git(["clone", "--quiet", "--bare", "--filter=blob:none", "--no-tags", "--", check_clone_url(url), str(dest)],
         cwd=None, timeout=timeout)
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
    """Non-merge commits reachable from ``head`` committed in [start, end), newest first."""
    args = ["log", "--no-merges", "--format=%H%x00%P%x00%aI%x00%B%x1e",
            f"--since={start.isoformat()}", f"--until={end.isoformat()}", head]
    if limits.max_commits_per_repo:
        args.insert(1, f"--max-count={limits.max_commits_per_repo}")
    out = []
    for record in _git(args, cwd=git_dir, timeout=limits.git_timeout_s).split(b"\x1e"):
        record = record.lstrip(b"\n")
        if not record:
            continue
        sha, parents, date, message = record.split(b"\x00", 3)
        when = datetime.fromisoformat(_text(date)).astimezone(UTC)
        parent = _text(parents).split()[0] if parents.strip() else None
        out.append({"sha": _text(sha), "parent_sha": parent, "author_date": when,
                    "message": _text(message).rstrip("\n")})
    return out


def _name_status(git_dir: Path, parent: str | None, sha: str, timeout: float) -> list[tuple[str, str]]:
    """(status letter, path) of each changed file, in diff-tree order (renames report the new path)."""
    args = ["diff-tree", "-r", "-M", "--no-commit-id", "--name-status", "-z"]
    args += [parent, sha] if parent else ["--root", sha]
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


def _file_diffs(git_dir: Path, parent: str | None, sha: str, timeout: float) -> list[str]:
    """The unified diff of each changed file, in the same order as :func:`_name_status`."""
    args = ["diff-tree", "-p", "-r", "-M", "--no-color", "--no-commit-id", "--no-ext-diff"]
    args += [parent, sha] if parent else ["--root", sha]
    diffs: list[list[str]] = []
    for line in _text(_git(args, cwd=git_dir, timeout=timeout)).splitlines(keepends=True):
        if line.startswith("diff --git "):
            diffs.append([])
        if diffs:
            diffs[-1].append(line)
    return ["".join(d) for d in diffs]


def _tree_and_readme(git_dir: Path, parent: str | None, limits: CommitLimits) -> tuple[str | None, str | None]:
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
        if kind == b"blob" and _text(name).lower().startswith("readme"):
            candidates.append((_text(name).lower() != "readme.md", _text(name), _text(oid)))
    if candidates:
        _, _, oid = min(candidates)
        blob = _git(["cat-file", "blob", oid], cwd=git_dir, timeout=timeout)
        readme, _ = _cut(_text(blob[: limits.max_readme_bytes + 4]), limits.max_readme_bytes)
    return tree, readme


def commit_records(git_dir: Path, repo: str, head: str, start: datetime, end: datetime,
                   limits: CommitLimits) -> list[dict]:
    """COMMITS rows of ``repo`` for the period, newest first."""
    rows = []
    for commit in list_period_commits(git_dir, head, start, end, limits):
        parent, sha = commit["parent_sha"], commit["sha"]
        statuses = _name_status(git_dir, parent, sha, limits.git_timeout_s)
        diffs = _file_diffs(git_dir, parent, sha, limits.git_timeout_s)
        if len(diffs) != len(statuses):
            raise CommitError("diff_mismatch", f"{repo}@{sha}: {len(statuses)} changed paths, {len(diffs)} diffs")
        changes = []
        for (status, path), diff in list(zip(statuses, diffs, strict=True))[: limits.max_files_per_commit]:
            text, truncated = _cut(diff, limits.max_diff_bytes)
            changes.append({"path": path, "status": status, "diff": text, "truncated": truncated})
        tree, readme = _tree_and_readme(git_dir, parent, limits)
        rows.append({"repo": repo, **commit, "readme": readme, "tree": tree, "changes": changes})
    return rows


def crawl_commits(clone_url: str, repo: str, head: str, start: datetime, end: datetime, limits: CommitLimits,
                  workdir: Path) -> list[dict]:
    """Clone ``clone_url`` into ``workdir`` and return its period's commit rows (the clone is left for the caller)."""
    git_dir = clone_bare(clone_url, workdir / "repo.git", limits.git_timeout_s)
    rows = commit_records(git_dir, repo, head, start, end, limits)
    log.info("%s: %d commits in [%s, %s)", repo, len(rows), start.date(), end.date())
    return rows
