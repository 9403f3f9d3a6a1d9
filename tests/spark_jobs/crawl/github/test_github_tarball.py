"""Streaming tarball extraction: real code is kept, every hostile member is refused with its reason."""

from __future__ import annotations

import gzip
import io
import tarfile
import time

import pytest
from code_corpus import hostile_tarball, stdlib_files, truncated

from spark_jobs.crawl.file_rules import FileRules
from spark_jobs.crawl.github.config import ArchiveLimits
from spark_jobs.crawl.github.tarball import extract_all


def _tarball(files: dict[str, bytes], prefix: str = "o-r-abc1234") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        for rel, data in files.items():
            info = tarfile.TarInfo(f"{prefix}/{rel}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> bytes:
    return hostile_tarball(tmp_path_factory.mktemp("hostile"))


def test_real_code_is_kept_byte_for_byte_under_repository_paths():
    files = stdlib_files("email", 8)
    result = extract_all(io.BytesIO(_tarball(files)), FileRules(), ArchiveLimits())
    assert result.failure is None and not result.rejects
    assert [f.path for f in result.files] == sorted(files)
    for f in result.files:
        assert f.text.encode() == files[f.path] and f.language == "Python"


def test_every_hostile_member_is_refused_with_a_named_reason(hostile):
    t0 = time.monotonic()
    result = extract_all(io.BytesIO(hostile), FileRules(), ArchiveLimits())
    elapsed = time.monotonic() - t0
    assert result.failure is None
    reasons = {r.path: r.reason for r in result.rejects}
    assert reasons == {
        "evil-hostile-0000000/../../escape.py": "path_traversal",
        "/etc/cron.d/evil.sh": "absolute_path",
        "passwd.py": "symlink",
        "etc_dir": "symlink",
        "hard.py": "hardlink",
        "data/weights.json": "lfs_pointer",
        "evil-hostile-0000000/caf\ufffd.py": "invalid_path",
        "dev_null": "special_file",
        "fifo.py": "special_file",
        "src/json/__init__.py": "duplicate_path",
        "logo.png": "unknown_language",
        "bin.py": "binary",
        "latin1.py": "undecodable",
        "node_modules/lib/index.js": "vendored",
        "src/huge_sparse.py": "oversize",
    }
    sparse = next(r for r in result.rejects if r.path == "src/huge_sparse.py")
    assert sparse.size_bytes == 1 << 30
    assert elapsed < 30, "the sparse gigabyte must be skipped by its header, not read"
    assert [f.path for f in result.files] == ["src/json/__init__.py", "src/json/decoder.py", "src/json/encoder.py"]
    kept_init = next(f for f in result.files if f.path == "src/json/__init__.py")
    assert "second copy" not in kept_init.text, "the first member of a duplicated path wins"
    assert next(r for r in result.rejects if r.path == "passwd.py").detail == "-> /etc/passwd"
    assert next(r for r in result.rejects if r.path == "hard.py").detail == "-> evil-hostile-0000000/src/json/__init__.py"
    for r in result.rejects:  # everything recorded can be written: no lone surrogates left
        (r.path + (r.detail or "")).encode("utf-8")


def test_a_member_whose_decision_raises_is_a_reject_and_the_rest_is_kept(monkeypatch):
    from spark_jobs.crawl.github import tarball

    files = stdlib_files("email", 6)
    poisoned = sorted(files)[2]
    real = tarball.classify

    def poison(path, data, rules):
        if path == poisoned:
            raise RecursionError("maximum recursion depth exceeded")
        return real(path, data, rules)

    monkeypatch.setattr(tarball, "classify", poison)
    result = extract_all(io.BytesIO(_tarball(files)), FileRules(), ArchiveLimits())
    assert result.failure is None
    assert [f.path for f in result.files] == [p for p in sorted(files) if p != poisoned]
    [reject] = result.rejects
    assert (reject.path, reject.reason, reject.detail) == (
        poisoned, "extract_error", "RecursionError: maximum recursion depth exceeded")


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9, 0.999])
def test_a_truncated_archive_drops_the_whole_repository(hostile, fraction):
    result = extract_all(io.BytesIO(truncated(hostile, fraction)), FileRules(), ArchiveLimits())
    assert result.failure is not None and result.failure.reason == "truncated_archive"
    assert result.files == [] and result.rejects == []


def test_garbage_is_a_corrupt_archive():
    result = extract_all(io.BytesIO(b"<html>not a tarball</html>" * 20), FileRules(), ArchiveLimits())
    assert result.failure.reason == "corrupt_archive"


def test_limits_stop_bombs_before_reading_them(hostile):
    files = stdlib_files("json", 5)
    data = _tarball(files)
    too_big = extract_all(io.BytesIO(data), FileRules(), ArchiveLimits(max_archive_bytes=len(data) // 3))
    assert too_big.failure.reason == "archive_too_large" and too_big.files == []
    inflated = extract_all(io.BytesIO(data), FileRules(), ArchiveLimits(max_total_bytes=20_000))
    assert inflated.failure.reason == "archive_too_large"
    many = extract_all(io.BytesIO(data), FileRules(), ArchiveLimits(max_members=3))
    assert many.failure.reason == "too_many_members"


def test_file_rules_come_from_config():
    files = stdlib_files("json", 5)
    small = FileRules(max_file_bytes=5_000)
    result = extract_all(io.BytesIO(_tarball(files)), small, ArchiveLimits())
    sizes = {p: len(d) for p, d in files.items()}
    assert {r.path for r in result.rejects if r.reason == "oversize"} == {p for p, n in sizes.items() if n > 5_000}
    assert {f.path for f in result.files} == {p for p, n in sizes.items() if n <= 5_000}
