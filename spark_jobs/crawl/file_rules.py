"""The file rules every crawl source applies: what becomes a file record, and why the rest is dropped.

Each refusal has a reason name (it doubles as the metric name in ``_stats.json``):
``absolute_path``, ``path_traversal``, ``invalid_path`` (unsafe names), ``symlink`` / ``special_file`` (decided by the
caller from the filesystem or archive entry type), ``oversize``, ``binary``, ``undecodable``, ``vendored``,
``unknown_language``, ``lfs_pointer`` (a Git LFS pointer stands in for content kept elsewhere: it is not the file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from pydantic import Field

from lake.config import StrictModel
from lake.languages import language_of

# Directories whose contents are third-party or generated copies, not the repository's own code.
DEFAULT_VENDORED = (
    r"(^|/)node_modules/", r"(^|/)vendor/", r"(^|/)third_party/", r"(^|/)thirdparty/", r"(^|/)bower_components/",
    r"(^|/)\.git/", r"(^|/)(dist|build)/.*\.min\.(js|css)$", r"(^|/)__pycache__/", r"(^|/)\.(tox|venv|mypy_cache)/",
)


class FileRules(StrictModel):
    # Files above this size are dropped before reading (The Stack v2 uses 1 MB for most languages).
    max_file_bytes: int = Field(1_000_000, ge=1)
    # A NUL byte in the first this-many bytes marks a file binary (git's heuristic).
    binary_probe_bytes: int = Field(8000, ge=1)
    # Regular expressions over the repository-relative path of vendored / generated copies.
    vendored_patterns: tuple[str, ...] = DEFAULT_VENDORED


@dataclass(frozen=True)
class Verdict:
    text: str | None
    language: str | None
    reason: str | None = None
    detail: str | None = None

    @property
    def kept(self) -> bool:
        return self.reason is None


def printable(text: str) -> str:
    """``text`` safe to store: bytes that were not UTF-8 (kept by tarfile and os.walk as lone surrogates) become
    U+FFFD.

    >>> printable("ok.py"), printable(b"caf\\xe9.py".decode("utf-8", "surrogateescape"))
    ('ok.py', 'caf\ufffd.py')
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def is_utf8(name: str) -> bool:
    """Whether a name decoded with ``surrogateescape`` was valid UTF-8 (no lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unsafe_path_reason(path: str) -> str | None:
    """Why a repository-relative path must not be used, or None if it is safe.

    >>> [unsafe_path_reason(p) for p in ["src/a.py", "/etc/passwd", "a/../../x", "a\\x00b"]]
    [None, 'absolute_path', 'path_traversal', 'invalid_path']
    """
    if not path or "\x00" in path or len(path) > 4096 or not is_utf8(path):
        return "invalid_path"
    if path.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", path):
        return "absolute_path"
    if ".." in PurePosixPath(path.replace("\\", "/")).parts:
        return "path_traversal"
    return None


_vendored_cache: dict[tuple[str, ...], re.Pattern[str]] = {}


def is_vendored(path: str, rules: FileRules) -> bool:
    pattern = _vendored_cache.get(rules.vendored_patterns)
    if pattern is None:
        pattern = re.compile("|".join(f"(?:{p})" for p in rules.vendored_patterns))
        _vendored_cache[rules.vendored_patterns] = pattern
    return bool(pattern.search(path))


def classify_name(path: str, size: int, rules: FileRules) -> Verdict | None:
    """The decisions that need no content (so huge or unwanted files are never read); None: read it."""
    reason = unsafe_path_reason(path)
    if reason:
        return Verdict(None, None, reason, printable(path)[:200])
    if is_vendored(path, rules):
        return Verdict(None, None, "vendored")
    language = language_of(path)
    if language is None:
        return Verdict(None, None, "unknown_language", PurePosixPath(path).suffix or PurePosixPath(path).name)
    if size > rules.max_file_bytes:
        return Verdict(None, language, "oversize", f"{size} bytes > {rules.max_file_bytes}")
    return None


# Git LFS pointer files (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md): under 1024 bytes, a version line
# first, then sorted "key value" lines, among them the object's sha256 oid and its size.
_LFS_POINTER = re.compile(rb"\Aversion https://git-lfs\.github\.com/spec/v1\n(?:[a-z0-9.-]+ [^\n]*\n)*\Z")
_LFS_OID = re.compile(rb"^oid sha256:[0-9a-f]{64}$", re.M)


def is_lfs_pointer(data: bytes) -> bool:
    """Whether ``data`` is a Git LFS pointer rather than the file it points to.

    >>> is_lfs_pointer(b"version https://git-lfs.github.com/spec/v1\\noid sha256:" + b"a" * 64 + b"\\nsize 12\\n")
    True
    >>> is_lfs_pointer(b"version https://git-lfs.github.com/spec/v1 is the spec we follow\\n")
    False
    """
    return len(data) < 1024 and bool(_LFS_POINTER.match(data)) and bool(_LFS_OID.search(data))


def classify(path: str, data: bytes, rules: FileRules) -> Verdict:
    """Decide one file from its path and bytes.

    >>> rules = FileRules()
    >>> classify("a.py", b"print(1)\\n", rules).language
    'Python'
    >>> classify("a.py", b"\\x00\\x01", rules).reason, classify("a.py", b"\\xff\\xfe\\xfa", rules).reason
    ('binary', 'undecodable')
    """
    early = classify_name(path, len(data), rules)
    if early is not None:
        return early
    language = language_of(path)
    if is_lfs_pointer(data):
        return Verdict(None, language, "lfs_pointer", data.split(b"\n", 2)[1].decode("ascii", "replace")[:100])
    if b"\x00" in data[: rules.binary_probe_bytes]:
        return Verdict(None, language, "binary")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        return Verdict(None, language, "undecodable", f"invalid UTF-8 at byte {err.start}")
    if text.startswith("\ufeff"):
        text = text[1:]
    return Verdict(text, language)
