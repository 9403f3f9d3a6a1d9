"""Build the demo's local source from real code already on this machine (nothing is downloaded).

Each installed Python distribution becomes one repository (its files as installed, licence and version from its
metadata), and the standard library of each CPython version found becomes one repository too: thousands of
real files no one here wrote, with real exact duplicates (the same package in two environments) and near
duplicates (one module across Python versions). Stars and forks are unknown for these and recorded as 0.

    python -m spark_jobs.crawl.demo_source --out .work/demo_source --max-files 14000
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import logging
import shutil
import sys
from pathlib import Path

log = logging.getLogger("demo_source")

# Trove classifiers -> SPDX ids, for distributions that predate License-Expression.
CLASSIFIER_SPDX = {
    "MIT License": "MIT", "Apache Software License": "Apache-2.0", "BSD License": "BSD-3-Clause",
    "ISC License (ISCL)": "ISC", "Python Software Foundation License": "PSF-2.0",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0", "GNU General Public License v3 (GPLv3)": "GPL-3.0",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0", "The Unlicense (Unlicense)": "Unlicense",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0", "Zope Public License": "ZPL-2.1",
}
SPDX_SHORT = {"MIT", "Apache-2.0", "BSD-3-Clause", "BSD-2-Clause", "ISC", "PSF-2.0", "MPL-2.0", "0BSD",
              "Unlicense", "LGPL-3.0", "GPL-3.0"}
MAX_COPY_BYTES = 4_000_000  # larger files are not copied (the crawl would drop them as oversize anyway)


def spdx_of(meta) -> str | None:
    expr = meta.get("License-Expression")
    if expr:
        return expr.strip()
    lic = (meta.get("License") or "").strip()
    if lic in SPDX_SHORT:
        return lic
    for classifier in meta.get_all("Classifier") or []:
        if classifier.startswith("License :: "):
            name = classifier.split(" :: ")[-1]
            if name in CLASSIFIER_SPDX:
                return CLASSIFIER_SPDX[name]
    return None


def _copy(src: Path, dst: Path) -> bool:
    try:
        if src.is_symlink() or not src.is_file() or src.stat().st_size > MAX_COPY_BYTES:
            return False
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return True
    except OSError:
        return False


def add_distribution(dist, out: Path, owner: str = "pypi") -> int:
    name = dist.metadata["Name"]
    repo_dir = out / f"{owner}__{name.lower().replace('-', '_')}"
    copied = 0
    for f in sorted(dist.files or [], key=str):
        rel = str(f)
        if rel.startswith("..") or ".dist-info/" in rel or rel.startswith("/"):
            continue
        copied += _copy(Path(dist.locate_file(f)), repo_dir / rel)
    if copied:
        meta = {"repo": f"{owner}/{name}", "license": spdx_of(dist.metadata),
                "source": f"pypi:{name}=={dist.version}", "stars": 0, "forks": 0}
        (repo_dir / ".repo.json").write_text(json.dumps(meta, indent=1))
    return copied


def add_stdlib(lib: Path, version: str, out: Path, max_files: int) -> int:
    repo_dir = out / f"cpython__stdlib_{version}"
    copied = 0
    for src in sorted(lib.rglob("*.py")):
        rel = src.relative_to(lib)
        if rel.parts[0] in ("site-packages", "test", "idlelib", "lib2to3") or copied >= max_files:
            continue
        copied += _copy(src, repo_dir / rel)
    (repo_dir / ".repo.json").write_text(json.dumps({"repo": f"python/cpython-{version}", "license": "PSF-2.0",
                                                     "source": str(lib), "stars": 0, "forks": 0}))
    return copied


def add_mirrors(site_packages: Path, out: Path, limit: int) -> int:
    """The same distributions installed in a second environment: real whole-repository copies (and, where the
    versions differ, real near-copies), as forks and mirrors are on GitHub."""
    added = 0
    for dist in sorted(md.distributions(path=[str(site_packages)]), key=lambda d: (d.metadata["Name"] or "").lower()):
        if added >= limit:
            break
        if dist.metadata["Name"] in MIRROR_CANDIDATES and add_distribution(dist, out, owner="mirror"):
            added += 1
    return added


# Small pure-Python distributions that both environments install.
MIRROR_CANDIDATES = {"certifi", "idna", "six", "attrs", "jinja2", "Jinja2", "packaging", "pyyaml", "PyYAML", "tqdm"}


def build(out: Path, max_files: int, pythons: list[Path], mirror_site: Path | None = None) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    total, repos = 0, 0
    for lib in pythons:
        version = lib.name.removeprefix("python")
        total += add_stdlib(lib, version, out, max_files=max_files // 6)
        repos += 1
    for dist in sorted(md.distributions(), key=lambda d: (d.metadata["Name"] or "").lower()):
        if total >= max_files:
            break
        n = add_distribution(dist, out)
        total += n
        repos += n > 0
    if mirror_site is not None and mirror_site.is_dir():
        repos += add_mirrors(mirror_site, out, limit=5)
    return {"root": str(out), "repositories": repos, "files": total}


def find_stdlibs() -> list[Path]:
    """The standard library of this Python and of up to two other CPython versions on the machine."""
    here = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    found = [here]
    pyenv = Path.home() / ".pyenv" / "versions"
    for lib in sorted(pyenv.glob("3.1[0-3]*/lib/python3.*")):
        if lib.resolve() != here.resolve() and lib.is_dir() and len(found) < 3:
            found.append(lib)
    return [p for p in found if p.is_dir()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=".work/demo_source", help="directory of repositories to (re)create")
    parser.add_argument("--max-files", type=int, default=14000, help="stop adding repositories past this many files")
    parser.add_argument("--mirror-site-packages", default=None,
                        help="site-packages of a second environment whose copies of a few distributions are added "
                             "as mirror repositories (default: .venv-gpu's, if present)")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    mirror = Path(args.mirror_site_packages) if args.mirror_site_packages else next(
        iter(sorted(Path(".venv-gpu/lib").glob("python3*/site-packages"))), None)
    summary = build(Path(args.out), args.max_files, find_stdlibs(), mirror)
    log.info("demo source: %(repositories)d repositories, %(files)d files in %(root)s", summary)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
