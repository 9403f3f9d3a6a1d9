"""Streaming extraction of a repository tarball into file records, applying the crawl's file rules.

The archive is read once, front to back, with ``tarfile`` in stream mode (``r|`` over a ``GzipFile``): nothing is extracted to
disk and no member is read before its declared size and name have passed the rules, so a 1 GB sparse member
costs a header, not a gigabyte. Hostile members are refused with a named reason: unsafe names
(``absolute_path``, ``path_traversal``, ``invalid_path``: a name that is not valid UTF-8 too), ``symlink``
(symbolic links, whatever the target), ``hardlink``, ``special_file`` (devices, FIFOs), ``duplicate_path``, plus
every content rule of :mod:`spark_jobs.crawl.file_rules` (Git LFS pointers: ``lfs_pointer``).

Each member is decided in isolation (:mod:`lake.faults`): a member whose decision raises anything becomes a
``extract_error`` rejection with the exception's type, and extraction goes on with the next one. Only the stream
itself (a cut or corrupt archive) fails the repository.

A truncated or corrupt archive raises :class:`ArchiveError` mid-stream. The caller drops the whole repository
(see :func:`extract_all`): repository-level training data needs the complete tree, a partial one would silently
look complete downstream, and a later run fetches it again because failures are never cached.
"""

from __future__ import annotations

import gzip
import http.client
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

import urllib3

from lake.faults import isolated
from spark_jobs.crawl.file_rules import FileRules, classify, classify_name, is_utf8, printable, unsafe_path_reason
from spark_jobs.crawl.github.config import ArchiveLimits


@dataclass(frozen=True)
class ExtractedFile:
    path: str
    text: str
    language: str
    size_bytes: int


@dataclass(frozen=True)
class Rejected:
    path: str
    reason: str
    detail: str | None
    size_bytes: int | None


class ArchiveError(Exception):
    """The archive as a whole is unusable; ``reason`` names why (it becomes the repository's drop reason)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class CountingReader:
    """A read-only stream that counts compressed bytes and stops at a limit (oversized downloads)."""

    def __init__(self, raw: BinaryIO, limit: int):
        self.raw = raw
        self.limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        if self.count > self.limit:
            raise ArchiveError("archive_too_large", f"more than {self.limit} compressed bytes")
        return data


def _repo_path(name: str) -> tuple[str | None, str | None]:
    """(path inside the repository, unsafe reason) of a member name.

    GitHub tarballs put everything under one top folder ``owner-repo-sha/``; it is stripped.

    >>> _repo_path("o-r-abc/src/a.py"), _repo_path("o-r-abc/"), _repo_path("/etc/passwd")
    (('src/a.py', None), (None, None), ('/etc/passwd', 'absolute_path'))
    >>> _repo_path("o-r-abc/../../x")
    ('o-r-abc/../../x', 'path_traversal')
    """
    reason = unsafe_path_reason(name)
    if reason:
        return name, reason
    parts = PurePosixPath(name).parts[1:]
    if not parts:
        return None, None
    return "/".join(parts), None


def _header_verdict(member: tarfile.TarInfo, seen: set[str], rules: FileRules) -> Rejected | str | None:
    """What a member's header alone decides: a rejection, ``"skip"`` (directories, the top folder), or the
    repository path of a member whose content must be read."""
    if member.isdir():
        return "skip"
    if not is_utf8(member.name):
        return Rejected(printable(member.name)[:500], "invalid_path", "member name is not valid UTF-8", member.size)
    path, reason = _repo_path(member.name)
    if path is None:
        return "skip"
    if reason:
        return Rejected(path[:500], reason, member.name[:200], member.size)
    if member.issym():
        return Rejected(path, "symlink", f"-> {printable(member.linkname)[:200]}", None)
    if member.islnk():
        return Rejected(path, "hardlink", f"-> {printable(member.linkname)[:200]}", None)
    if not member.isfile():
        return Rejected(path, "special_file", "fifo" if member.isfifo() else "device", None)
    if path in seen:
        return Rejected(path, "duplicate_path", "a second member with the same path", member.size)
    seen.add(path)
    early = classify_name(path, member.size, rules)
    if early is not None:
        return Rejected(path, early.reason, early.detail, member.size)
    return path


def _content_verdict(path: str, data: bytes, rules: FileRules) -> ExtractedFile | Rejected:
    verdict = classify(path, data, rules)
    if verdict.kept:
        return ExtractedFile(path, verdict.text, verdict.language, len(data))
    return Rejected(path, verdict.reason, verdict.detail, len(data))


def iter_tarball(counted: CountingReader, rules: FileRules,
                 limits: ArchiveLimits) -> Iterator[ExtractedFile | Rejected]:
    """Each member of a gzipped repository tarball as a kept file or a rejection; raises ArchiveError."""
    seen: set[str] = set()
    members = 0
    total = 0
    try:
        # Stream mode over our own GzipFile rather than tarfile's "r|gz": that one never checks the gzip CRC
        # and length, so an archive cut inside its trailer, or corrupted inside a member, would pass as whole.
        gz = gzip.GzipFile(fileobj=counted, mode="rb")
        with tarfile.open(fileobj=gz, mode="r|") as archive:
            for member in archive:
                members += 1
                if members > limits.max_members:
                    raise ArchiveError("too_many_members", f"more than {limits.max_members} members")
                name = printable(member.name)[:500] or "?"
                verdict, error = isolated("extract_error", name, _header_verdict, member, seen, rules)
                if error is not None:
                    yield Rejected(name, error.reason, error.detail, None)
                    continue
                if verdict == "skip":
                    continue
                if isinstance(verdict, Rejected):
                    yield verdict
                    continue
                path = verdict
                total += member.size
                if total > limits.max_total_bytes:
                    raise ArchiveError("archive_too_large", f"more than {limits.max_total_bytes} uncompressed bytes")
                handle = archive.extractfile(member)
                data = handle.read() if handle is not None else b""
                if len(data) != member.size:
                    raise ArchiveError("truncated_archive", f"member {path} ended after {len(data)} bytes")
                item, error = isolated("extract_error", path, _content_verdict, path, data, rules)
                yield item if error is None else Rejected(path, error.reason, error.detail, len(data))
        while gz.read(1 << 16):  # to the end of the gzip stream: its CRC and length are checked there
            pass
    except ArchiveError:
        raise
    except (http.client.HTTPException, urllib3.exceptions.HTTPError) as err:
        raise ArchiveError("truncated_archive", f"download broke: {type(err).__name__}: {str(err)[:200]} "
                                                f"(after {counted.count} compressed bytes)") from None
    except (EOFError, tarfile.ReadError, gzip.BadGzipFile, zlib.error, OSError) as err:
        # gzip reports a cut stream as EOFError, tarfile as ReadError ("unexpected end of data").
        kind = "truncated_archive" if isinstance(err, EOFError) or "end of" in str(err).lower() else "corrupt_archive"
        raise ArchiveError(kind, f"{type(err).__name__}: {err} (after {counted.count} compressed bytes)") from None


@dataclass
class Extraction:
    """A whole repository: kept files and rejections, or the archive-level failure that dropped all of it."""

    files: list[ExtractedFile]
    rejects: list[Rejected]
    failure: ArchiveError | None = None
    compressed_bytes: int = 0


def extract_all(stream: BinaryIO, rules: FileRules, limits: ArchiveLimits) -> Extraction:
    """Extract a repository completely, or drop it whole if the archive fails (partial trees never survive)."""
    counted = CountingReader(stream, limits.max_archive_bytes)
    files: list[ExtractedFile] = []
    rejects: list[Rejected] = []
    try:
        for item in iter_tarball(counted, rules, limits):
            (files if isinstance(item, ExtractedFile) else rejects).append(item)
    except ArchiveError as err:
        return Extraction([], [], err, counted.count)
    files.sort(key=lambda f: f.path)
    rejects.sort(key=lambda r: (r.path, r.reason))
    return Extraction(files, rejects, None, counted.count)
