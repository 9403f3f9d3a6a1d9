"""C and C++ syntax check against the compiler: recall per corruption kind, valid real files dropped.

    .venv/bin/python benchmarks/syntax_cfamily.py --base 200 --pool 1500 --workdir /tmp/cfamily

Labelled set (per language): real files found on this machine (C: /usr/include outside the C++ trees, the C
sources of the installed Pythons' packages and of /usr/share, /usr/lib; C++: libstdc++, LLVM 14 and node's headers,
the C++ sources of both virtual environments) that gcc/g++ compile cleanly with their include directories
(``-fsyntax-only``, all headers present: the compiler has the whole context the filter lacks), and five seeded
corruptions of each: a stray token (a copy of one of the file's own tokens inserted before another), a deleted
bracket, a duplicated bracket, two adjacent code lines swapped, and a truncation at a token. The compiler labels
every corrupted file: its first error is a parse error (``expected ...``, ``stray ...``, ``unterminated ...``,
``... does not name a type``) -> invalid; no error -> valid (the corruption was harmless); only name/type errors
(``undeclared``, ``no matching function``...) -> semantic, reported apart and left out of recall and precision,
since no syntax check can see them. A corruption on a line the preprocessor skipped in this build (the other side
of ``#ifdef __cplusplus`` or ``#ifdef _WIN32``) is invisible to the compiler: labelled ``unseen`` and left out too
(the filter checks every branch, so it drops most of them: a broken branch is broken code on another platform).

Reported per language and per corruption kind: recall of invalid; on valid files: share dropped (the real files
of the labelled set, the harmless corruptions, and a wider pool of ``--pool`` real files that need not compile,
since shipped code is valid code in its build). Labels are cached in ``--workdir`` (the compiler is the slow part).
Detector speed is a timing: comparable only on a quiet machine (benchmarks/quiet.py labels it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from spark_jobs.filters.c_compile import CONTEXT_SUFFIXES, PARSE_ERROR, CompileCheck, Repository
from spark_jobs.filters.c_tokens import tokens
from spark_jobs.filters.syntax_filter import SyntaxFilter

log = logging.getLogger("bench.cfamily")

KINDS = ("stray_token", "delete_bracket", "duplicate_bracket", "swap_lines", "truncate")
CPP_TREES = ("/usr/include/c++/", "/usr/include/llvm-", "/usr/include/node/", "/usr/include/x86_64-linux-gnu/c++/")
C_SUFFIXES = (".c",)
CPP_SUFFIXES = (".cpp", ".cc", ".cxx", ".hpp", ".hh", ".hxx")
MAX_BYTES = 200_000

# The first error decides the label: a parse error (the grammar's, the lexer's, the preprocessor's) is invalid; name
# lookup and typing need declarations a syntax check may not have. The filter's compile check uses the same
# definition of a parse error, but the labels come from the full context (every header present).
SYNTAX_ERROR = PARSE_ERROR


def search_roots(language: str) -> list[tuple[Path, tuple[str, ...]]]:
    venvs = [Path(sys.prefix).parent / ".venv", Path(sys.prefix).parent / ".venv-gpu"]
    if language == "C":
        return [(Path("/usr/include"), (".h",)), (Path("/usr/share"), C_SUFFIXES), (Path("/usr/lib"), C_SUFFIXES),
                (Path("/root/.pyenv/versions"), (".c", ".h")), *[(v, C_SUFFIXES) for v in venvs]]
    return [(Path("/usr/include/c++"), ("",)), (Path("/usr/include/llvm-14"), (".h",)),
            (Path("/usr/include/node"), (".h",)), *[(v, CPP_SUFFIXES) for v in venvs]]


def find_files(language: str) -> list[Path]:
    """Distinct real files of ``language`` on this machine, in a stable order."""
    found, seen = [], set()
    for root, suffixes in search_roots(language):
        if not root.exists():
            continue
        for path in sorted(root.rglob("*")):
            name = str(path)
            if not path.is_file() or path.is_symlink():
                continue
            if suffixes == ("",):
                ok = "." not in path.name or path.suffix in (".h", ".tcc")
            else:
                ok = path.suffix in suffixes
            if language == "C" and name.startswith(CPP_TREES):
                ok = False
            if not ok or not 0 < path.stat().st_size <= MAX_BYTES:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            digest = hashlib.sha256(text.encode()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                found.append(path)
    return found


def include_dirs(path: Path) -> list[str]:
    dirs = [path.parent, *list(path.parents)[1:4]]
    for part in ("include", "Include", "src"):
        for parent in path.parents:
            if (parent / part).is_dir():
                dirs.append(parent / part)
                break
    dirs += [Path("/usr/include/python3.11"), Path("/usr/include/llvm-14"), Path("/usr/include/node")]
    return [f"-I{d}" for d in dict.fromkeys(dirs)]


def _gcc(language: str, text: str, origin: Path, mode: str) -> tuple[subprocess.CompletedProcess | None, str]:
    with tempfile.TemporaryDirectory(prefix="cfam-") as tmp:
        name = origin.name if origin.suffix else origin.name + ".h"
        target = Path(tmp, name)
        target.write_text(text, encoding="utf-8")
        lang = ["-x", "c", "-std=gnu17"] if language == "C" else ["-x", "c++", "-std=gnu++20"]
        cmd = ["gcc", mode, "-w", "-fmax-errors=5", *lang, "-iquote", str(origin.parent),
               *include_dirs(origin), str(target)]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=60, errors="replace"), str(target)
        except subprocess.TimeoutExpired:
            return None, str(target)


def compile_errors(language: str, text: str, origin: Path) -> list[str]:
    """gcc/g++ ``-fsyntax-only`` errors of ``text`` compiled as if it were ``origin`` (its include path)."""
    done, target = _gcc(language, text, origin, "-fsyntax-only")
    if done is None:
        return ["timeout"]
    return [line.split(" error: ", 1)[1] for line in done.stderr.splitlines()
            if " error: " in line and line.startswith(target)] or (
        ["error in an included file"] if done.returncode else [])


_MARKER = re.compile(r'^# (\d+) "(.*)"')


def compiled_lines(language: str, text: str, origin: Path) -> set[int]:
    """Lines of ``text`` the preprocessor passes to the compiler (from ``gcc -E``'s line markers)."""
    done, target = _gcc(language, text, origin, "-E")
    seen: set[int] = set()
    line, ours = 0, False
    for out in (done.stdout if done else "").splitlines():
        marker = _MARKER.match(out)
        if marker:
            line, ours = int(marker.group(1)), marker.group(2) == target
            continue
        if ours and out.strip():
            seen.add(line)
        line += 1
    return seen


def corrupted_line(original: str, corrupted: str) -> int:
    """1-based line of the first character where ``corrupted`` differs from ``original``."""
    i = next((k for k, (a, b) in enumerate(zip(original, corrupted, strict=False)) if a != b),
             min(len(original), len(corrupted)))
    return original.count("\n", 0, i) + 1


def label(errors: list[str]) -> str:
    if not errors:
        return "valid"
    return "invalid" if SYNTAX_ERROR.search(errors[0]) else "semantic"


def corrupt(text: str, kind: str, seed: str) -> str | None:
    """One seeded corruption of ``text`` at code tokens (never inside comments), or None if it has no place."""
    rng = random.Random(hashlib.sha256(f"{seed}#{kind}".encode()).digest())
    code = [t for t in tokens(text) if t.kind != "directive"]
    if len(code) < 8:
        return None
    if kind == "stray_token":
        where = rng.choice(code[1:])
        what = rng.choice(code).text
        return text[:where.start] + what + " " + text[where.start:]
    if kind in ("delete_bracket", "duplicate_bracket"):
        brackets = [t for t in code if t.text in "()[]{}" and len(t.text) == 1]
        if not brackets:
            return None
        t = rng.choice(brackets)
        return text[:t.start] + ("" if kind == "delete_bracket" else t.text) + text[t.start:][0 if kind ==
                                                                                         "duplicate_bracket" else 1:]
    if kind == "swap_lines":
        lines = text.splitlines(keepends=True)
        code_lines = sorted({t.line - 1 for t in code})
        pairs = [(a, b) for a, b in zip(code_lines, code_lines[1:], strict=False)
                 if b == a + 1 and lines[a].strip() != lines[b].strip()]
        if not pairs:
            return None
        a, b = rng.choice(pairs)
        lines[a], lines[b] = lines[b], lines[a]
        return "".join(lines)
    if kind == "truncate":
        lo, hi = int(len(code) * 0.2), int(len(code) * 0.95)
        return text[:code[rng.randrange(lo, max(hi, lo + 1))].start]
    raise ValueError(kind)


def build(language: str, base: int, pool: int, workdir: Path, workers: int) -> dict:
    """The labelled set (cached in ``workdir``): real files that compile, their corruptions, and the wider pool."""
    cache = workdir / f"{language.replace('+', 'p')}-{base}-{pool}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    files = find_files(language)
    rng = random.Random(0)
    rng.shuffle(files)
    log.info("%s: %d distinct real files found", language, len(files))
    wider = [{"name": str(p), "text": p.read_text(encoding="utf-8")} for p in files[:pool]]
    chosen: list[tuple[Path, str]] = []
    with ThreadPoolExecutor(workers) as ex:
        for start in range(0, len(files), 4 * workers):
            batch = files[start:start + 4 * workers]
            texts = [p.read_text(encoding="utf-8") for p in batch]
            for path, text, errors in zip(batch, texts, ex.map(lambda pt: compile_errors(language, pt[1], pt[0]),
                                                              zip(batch, texts, strict=True)), strict=True):
                if not errors and len(list(tokens(text))) >= 20:
                    chosen.append((path, text))
            if len(chosen) >= base:
                break
        chosen = chosen[:base]
        log.info("%s: %d real files compile cleanly; corrupting and labelling", language, len(chosen))
        samples = [{"name": str(p), "origin": str(p), "kind": "real", "text": t, "label": "valid"} for p, t in chosen]
        jobs = []
        lines = dict(zip([str(p) for p, _ in chosen],
                         ex.map(lambda pt: compiled_lines(language, pt[1], pt[0]), chosen), strict=True))
        for path, text in chosen:
            for kind in KINDS:
                bad = corrupt(text, kind, str(path))
                if bad is not None and bad != text:
                    jobs.append({"name": f"{path}#{kind}", "origin": str(path), "kind": kind, "text": bad,
                                 "line": corrupted_line(text, bad)})
        for job, errors in zip(jobs, ex.map(lambda j: compile_errors(language, j["text"], Path(j["origin"])), jobs),
                               strict=True):
            job["label"] = label(errors)
            if job["label"] == "valid" and job["kind"] != "truncate" and job["line"] not in lines[job["origin"]]:
                job["label"] = "unseen"
            job["first_error"] = errors[0][:200] if errors else None
            samples.append(job)
    data = {"language": language, "samples": samples, "wider": wider}
    workdir.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(data))
    return data


# The filter's context, simulated. In production the crawl gives a file its repository's whole tree and the Spark
# image carries the system headers of libc, the kernel's uapi and libstdc++ only. Here a file's "repository" is the
# Debian package that installed it (its C-family files), or, outside dpkg, its project directory (a site-packages
# package, a pyenv Python, a /usr/share tree); the system headers are a tree of links to those four packages'
# headers. Headers of other packages (Python.h for an extension, X11 for a toolkit) are external dependencies the
# filter does not have, as it would not for a GitHub repository.
SYSTEM_PACKAGES = ("libc6-dev", "linux-libc-dev", "libstdc++-12-dev", "libgcc-12-dev")


def dpkg_files() -> tuple[dict[str, str], dict[str, list[str]]]:
    """(path -> package, package -> paths) of everything dpkg installed."""
    owner: dict[str, str] = {}
    files: dict[str, list[str]] = {}
    for listing in sorted(Path("/var/lib/dpkg/info").glob("*.list")):
        package = listing.name[:-len(".list")].split(":")[0]
        for line in listing.read_text(errors="replace").splitlines():
            owner[line] = package
            files.setdefault(package, []).append(line)
    return owner, files


def system_headers(workdir: Path, files: dict[str, list[str]]) -> tuple[str, ...]:
    """Include directories (``-nostdinc -isystem ...``) of a tree linking only SYSTEM_PACKAGES' headers."""
    root = workdir / "sysroot"
    for package in SYSTEM_PACKAGES:
        for name in files.get(package, []):
            if name.startswith("/usr/include/") and os.path.isfile(name):
                link = root / name[1:]
                if not link.exists():
                    link.parent.mkdir(parents=True, exist_ok=True)
                    link.symlink_to(os.path.realpath(name))
    gcc_include = subprocess.run(["gcc", "-print-file-name=include"], capture_output=True, text=True).stdout.strip()
    usr = root / "usr/include"
    return (str(usr / "c++/12"), str(usr / "x86_64-linux-gnu/c++/12"), str(usr / "c++/12/backward"), gcc_include,
            str(usr / "x86_64-linux-gnu"), str(usr))


class Repositories:
    """The simulated repository of each file (see SYSTEM_PACKAGES), built once per repository."""

    def __init__(self) -> None:
        self.owner, self.files = dpkg_files()
        self.cache: dict[str, Repository] = {}

    def root(self, path: str) -> tuple[str, list[str]]:
        package = self.owner.get(path)
        if package:
            return f"dpkg:{package}", self.files[package]
        parts = Path(path).parts
        if "site-packages" in parts:
            top = Path(*parts[:parts.index("site-packages") + 2])
        elif path.startswith("/root/.pyenv/versions/"):
            top = Path(*parts[:5])
        else:
            top = Path(*parts[:4])
        return str(top), [str(p) for p in sorted(top.rglob("*")) if p.suffix in CONTEXT_SUFFIXES]

    def of(self, path: str) -> Repository:
        key, names = self.root(path)
        if key not in self.cache:
            repo = Repository()
            for name in names:
                if (name.endswith(CONTEXT_SUFFIXES) or "/include/c++/" in name) and os.path.isfile(name) \
                        and os.path.getsize(name) <= MAX_BYTES:
                    try:
                        repo.add(name.lstrip("/"), Path(name).read_text(encoding="utf-8"))
                    except (UnicodeDecodeError, OSError):
                        continue
            self.cache[key] = repo
        return self.cache[key]


def evaluate(data: dict, step: SyntaxFilter, repositories: Repositories | None) -> dict:
    """Recall and drops of ``step``; ``repositories`` gives each file its repository (None: the file alone)."""
    language = data["language"]

    def dropped(name: str, origin: str, text: str) -> bool:
        step.repository = repositories.of(origin) if repositories else Repository()
        return not step.process({"path": origin.lstrip("/"), "language": language, "content": text}).keep

    t0, size = time.perf_counter(), 0
    verdicts = []
    for s in data["samples"]:
        size += len(s["text"].encode())
        verdicts.append(dropped(s["name"], s["origin"], s["text"]))
    seconds = time.perf_counter() - t0
    wider = [dropped(w["name"], w["name"], w["text"]) for w in data["wider"]]
    per_kind: dict[str, Counter] = {}
    tp = fp = fn = 0
    for s, d in zip(data["samples"], verdicts, strict=True):
        c = per_kind.setdefault(s["kind"], Counter())
        c[s["label"]] += 1
        c[f"{s['label']}_dropped"] += d
        if s["label"] == "invalid":
            tp, fn = tp + d, fn + (not d)
        elif s["label"] == "valid":
            fp += d
    valid_real = per_kind.get("real", Counter())
    return {"language": language, "files": len(verdicts), "invalid": tp + fn,
            "semantic": sum(c["semantic"] for c in per_kind.values()),
            "unseen": sum(c["unseen"] for c in per_kind.values()),
            "unseen_dropped": sum(c["unseen_dropped"] for c in per_kind.values()),
            "recall": tp / max(tp + fn, 1), "precision": tp / max(tp + fp, 1), "tp": tp, "fp": fp, "fn": fn,
            "valid_real_dropped": valid_real["valid_dropped"] / max(valid_real["valid"], 1),
            "valid_real": valid_real["valid"],
            "wider_dropped": sum(wider) / max(len(wider), 1), "wider": len(wider),
            "per_kind": {k: {"invalid": c["invalid"], "recall": c["invalid_dropped"] / max(c["invalid"], 1),
                             "valid": c["valid"], "valid_dropped": c["valid_dropped"], "semantic": c["semantic"]}
                         for k, c in sorted(per_kind.items())},
            "mb_per_s": size / seconds / 1e6, "files_per_s": len(verdicts) / seconds,
            "misses": [f"kept    {s['name']}  ({s.get('first_error')})"
                       for s, d in zip(data["samples"], verdicts, strict=True) if s["label"] == "invalid" and not d]
            + [f"dropped {s['name']}" for s, d in zip(data["samples"], verdicts, strict=True) if s["label"] == "valid" and d]
            + [f"dropped {w['name']} (pool)" for w, d in zip(data["wider"], wider, strict=True) if d]}


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.quiet import MachineGuard, add_quiet_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--languages", default="C,C++")
    parser.add_argument("--base", type=int, default=200, help="real files that compile, per language (x5 corruptions)")
    parser.add_argument("--pool", type=int, default=1500, help="wider pool of real files, per language")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "seedcoder-cfamily")
    parser.add_argument("--workers", type=int, default=2, help="parallel compiler processes")
    parser.add_argument("--show-misses", type=int, default=0, help="print up to N misclassified samples")
    parser.add_argument("--filters", default="compile,compile-no-context,tree-sitter",
                        help="filters to measure: compile (the stage's default: compiled against the file's "
                             "repository), compile-no-context (the file alone), tree-sitter (no compile check)")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    guard = MachineGuard.from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    load_before = os.getloadavg()
    print(f"# C-family syntax check vs gcc 12 ({platform.machine()}, load average before {load_before[0]:.1f})")
    owner_files = dpkg_files()[1]
    system = system_headers(args.workdir, owner_files)
    repositories = Repositories()
    for language in args.languages.split(","):
        data = build(language, args.base, args.pool, args.workdir, args.workers)
        for name in args.filters.split(","):
            check = CompileCheck(system_include_dirs=system) if name.startswith("compile") else None
            step = SyntaxFilter(compile_check=check)
            r = evaluate(data, step, repositories if name == "compile" else None)
            print(f"{language} [{name}]: {r['files']} labelled files ({r['valid_real']} real, {r['invalid']} invalid, "
                  f"{r['semantic']} semantic-only and {r['unseen']} in skipped #if branches left out, "
                  f"{r['unseen_dropped']} of those dropped); recall {r['recall']:.3f} precision {r['precision']:.3f} "
                  f"(tp {r['tp']} fp {r['fp']} fn {r['fn']}); valid real dropped {r['valid_real_dropped']:.3f}; "
                  f"wider pool of {r['wider']} real files dropped {r['wider_dropped']:.3f}; "
                  f"{r['files_per_s']:.1f} files/s {r['mb_per_s']:.2f} MB/s "
                  f"({'quiet machine' if guard.quiet_before else 'UNDER LOAD: provisional'})")
            for kind, k in r["per_kind"].items():
                print(f"   {kind:<18} invalid {k['invalid']:>4} recall {k['recall']:.3f}   valid {k['valid']:>4} "
                      f"dropped {k['valid_dropped']:>3}   semantic {k['semantic']}")
            for line in r["misses"][:args.show_misses]:
                print("   " + line)
    print(f"# load average after {os.getloadavg()[0]:.1f}")
    print(guard.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
