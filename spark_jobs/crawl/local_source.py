"""The local source: a directory of repositories, one folder per repository.

An optional ``.repo.json`` at a repository's root gives its metadata
(``{"repo": "owner/name", "stars": 10, "forks": 2, "license": "MIT", "created_at": "2020-01-31T00:00:00Z",
"commit": "<sha>", "source": "https://..."}``); without it the folder name is the repository name, counts are 0, the
licence unknown. The commit of a repository without one is a content-derived tree id, so it is stable across runs.
Symbolic links and anything that is not a regular file are refused, never followed.

Each file, and each repository as a whole, is handled in isolation (:mod:`lake.faults`): whatever one of them
raises becomes a reject with reason ``crawl_error`` and ``Type: message``, and the crawl goes on.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lake.faults import isolated
from lake.schemas import file_id, sha256_hex
from spark_jobs.crawl.file_rules import FileRules, classify, classify_name, printable

META_FILE = ".repo.json"
# Exceptions that mean the file could not be read (an expected refusal, not a failure of the crawl).
_UNREADABLE = frozenset({"OSError", "PermissionError", "FileNotFoundError", "IsADirectoryError"})


@dataclass(frozen=True)
class RepoMeta:
    repo: str
    stars: int = 0
    forks: int = 0
    license: str | None = None
    created_at: datetime | None = None
    commit: str | None = None
    source: str = ""


def read_meta(repo_dir: Path) -> tuple[RepoMeta, str | None]:
    """The repository's metadata, and a problem with its metadata file (which is then ignored) if any."""
    default = RepoMeta(repo=repo_dir.name, source=str(repo_dir))
    path = repo_dir / META_FILE
    if not path.is_file() or path.is_symlink():
        return default, None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        created = raw.get("created_at")
        return RepoMeta(
            repo=str(raw.get("repo") or repo_dir.name),
            stars=int(raw.get("stars") or 0),
            forks=int(raw.get("forks") or 0),
            license=raw.get("license") or None,
            created_at=datetime.fromisoformat(created.replace("Z", "+00:00")).astimezone(UTC)
            if created else None,
            commit=raw.get("commit") or None,
            source=str(raw.get("source") or repo_dir),
        ), None
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as err:
        return default, f"{path}: {err}"


def list_repositories(root: Path) -> list[Path]:
    if not root.is_dir():
        raise FileNotFoundError(f"local source {root} is not a directory of repositories")
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))


def walk_repository(repo_dir: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every entry below the repository, in a stable order, without following links."""
    for dirpath, dirnames, filenames in os.walk(repo_dir, followlinks=False):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(filenames) + [d for d in dirnames if (base / d).is_symlink()]:
            full = base / name
            rel = full.relative_to(repo_dir).as_posix()
            if rel == META_FILE:
                continue
            yield rel, full.lstat()


def crawl_repository(repo_dir: str, rules_json: str) -> list[tuple[str, tuple]]:
    """All records of one repository, or one ``crawl_error`` reject when the repository as a whole failed."""
    records, error = isolated("crawl_error", repo_dir, lambda: list(_repository_records(repo_dir, rules_json)))
    if error is None:
        return records
    return [("reject", (Path(repo_dir).name, "", error.reason, error.detail, None))]


def _decide(root: Path, rel: str, st: os.stat_result, rules: FileRules):
    """The verdict on one regular file (reads it only when its name and size pass)."""
    verdict = classify_name(rel, st.st_size, rules)
    if verdict is None:
        with open(root / rel, "rb") as fh:
            data = fh.read(rules.max_file_bytes + 1)
        verdict = classify(rel, data, rules)
    return verdict


def _repository_records(repo_dir: str, rules_json: str) -> Iterator[tuple[str, tuple]]:
    """("file", FILES row), ("reject", REJECTS row) for each entry, then one ("repo", REPOS row)."""
    rules = FileRules.model_validate_json(rules_json)
    root = Path(repo_dir)
    meta, meta_problem = read_meta(root)
    if meta_problem:
        yield "reject", (meta.repo, META_FILE, "bad_metadata", meta_problem[:500], None)
    kept: list[tuple] = []
    tree = []
    for rel, st in walk_repository(root):
        if stat.S_ISLNK(st.st_mode):
            yield "reject", (meta.repo, printable(rel), "symlink", printable(os.readlink(root / rel))[:200], None)
            continue
        if not stat.S_ISREG(st.st_mode):
            yield "reject", (meta.repo, printable(rel), "special_file", oct(st.st_mode), None)
            continue
        verdict, error = isolated("crawl_error", f"{meta.repo}:{rel}", _decide, root, rel, st, rules)
        if error is not None:
            reason = "unreadable" if error.error_type in _UNREADABLE else error.reason
            yield "reject", (meta.repo, printable(rel), reason, error.detail, st.st_size)
            continue
        if not verdict.kept:
            yield "reject", (meta.repo, printable(rel), verdict.reason, verdict.detail, st.st_size)
            continue
        content = verdict.text
        raw = content.encode("utf-8")
        digest = sha256_hex(raw)
        tree.append(f"{rel}\0{digest}")
        kept.append((rel, verdict.language, content, digest, len(raw), content.count("\n") + (0 if content.endswith("\n") or not content else 1)))
    commit = meta.commit or sha256_hex("\n".join(tree).encode())[:40]
    size = 0
    for rel, language, content, digest, nbytes, lines in kept:
        size += nbytes
        yield "file", (file_id(meta.repo, commit, rel), meta.repo, commit, rel, language, meta.license, meta.stars,
                       meta.forks, meta.created_at, content, digest, nbytes, lines)
    yield "repo", (meta.repo, commit, meta.license, meta.stars, meta.forks, meta.created_at, len(kept), size,
                   meta.source)
