"""Real code from this machine (the Python standard library) and hand-built hostile tarballs, for the crawl tests."""

from __future__ import annotations

import gzip
import io
import subprocess
import sysconfig
import tarfile
from pathlib import Path

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(package: str, limit: int = 12) -> dict[str, bytes]:
    """Up to ``limit`` real source files of a standard-library package, keyed by a repository path."""
    files = sorted((STDLIB / package).glob("*.py"))[:limit]
    if not files:
        raise FileNotFoundError(f"no Python files under {STDLIB / package}")
    return {f"src/{package}/{p.name}": p.read_bytes() for p in files}


def _add(archive: tarfile.TarFile, name: str, data: bytes = b"", **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    for key, value in attrs.items():
        setattr(info, key, value)
    archive.addfile(info, io.BytesIO(data) if data else None)


def hostile_tarball(workdir: Path, prefix: str = "evil-hostile-0000000") -> bytes:
    """A GitHub-style tarball with good code and every hostile member the crawl must refuse.

    The 1 GB sparse member is made by GNU tar from a sparse file (no gigabyte is written anywhere); the
    remaining members are appended with tarfile, since GNU tar refuses to write unsafe names.
    """
    tree = workdir / prefix
    (tree / "src").mkdir(parents=True)
    good = stdlib_files("json", 3)
    for rel, data in good.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    with open(tree / "src" / "huge_sparse.py", "wb") as fh:
        fh.truncate(1 << 30)
    plain = workdir / "hostile.tar"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", str(plain), "-C", str(workdir), prefix], check=True)
    with tarfile.open(plain, "a") as archive:
        _add(archive, f"{prefix}/../../escape.py", b"print('escaped')\n")
        _add(archive, "/etc/cron.d/evil.sh", b"echo pwned\n")
        _add(archive, f"{prefix}/passwd.py", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        _add(archive, f"{prefix}/etc_dir", type=tarfile.SYMTYPE, linkname="/etc")
        _add(archive, f"{prefix}/hard.py", type=tarfile.LNKTYPE, linkname=f"{prefix}/src/json/__init__.py")
        _add(archive, f"{prefix}/dev_null", type=tarfile.CHRTYPE)
        _add(archive, f"{prefix}/fifo.py", type=tarfile.FIFOTYPE)
        _add(archive, f"{prefix}/src/json/__init__.py", b"# second copy with the same path\n")
        _add(archive, f"{prefix}/logo.png", b"\x89PNG\r\n\x1a\n\x00\x00")
        _add(archive, f"{prefix}/bin.py", b"x = 1\x00\x00\x00")
        _add(archive, f"{prefix}/latin1.py", "s = 'caf\u00e9'\n".encode("latin-1"))
        _add(archive, f"{prefix}/node_modules/lib/index.js", b"module.exports = 1;\n")
        _add(archive, f"{prefix}/data/weights.json", b"version https://git-lfs.github.com/spec/v1\n"
             b"oid sha256:" + b"4d7a" * 16 + b"\nsize 52428800\n")
        # A member name that is not UTF-8 (latin-1 bytes): tarfile hands it over with lone surrogates.
        _add(archive, f"{prefix}/caf".encode().decode() + b"\xe9.py".decode("utf-8", "surrogateescape"),
             b"x = 1\n")
    return gzip.compress(plain.read_bytes(), mtime=0)


def truncated(data: bytes, fraction: float = 0.5) -> bytes:
    return data[: int(len(data) * fraction)]
