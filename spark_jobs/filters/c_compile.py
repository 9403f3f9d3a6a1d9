"""C and C++ files compiled against their own repository's headers: the compiler's parser as a syntax check.

A token check and tree-sitter catch what breaks the token stream (a lost bracket, a truncation), but not a stray
token or two swapped lines: the damage is a token or two, and tree-sitter cannot tell it from a macro it does not
know. The compiler can, given the declarations. So a C or C++ file is compiled (``gcc -fsyntax-only``) as it would
be in its repository: every ``#include`` is looked up

1. in the compiler's system headers (the image carries libc, the kernel's uapi and libstdc++ headers only);
2. in the repository, first relative to the including file, then by path suffix (``"foo/bar.h"`` matches any
   ``.../foo/bar.h`` of the repository, the nearest to the includer winning) -- the crawl has the whole tree,
   whatever the build system's ``-I`` flags were;
3. else it is an empty stub: an external dependency (Python.h for an extension module, a library's headers) is
   not there, and declarations it would have given are unknown names.

The headers found are written into a scratch tree (at their repository paths and under the spelling they were
included by), the file at its own path, and the compiler runs with ``-nostdinc`` when the system headers are
given explicitly. A computed include (``#include FT_CONFIG_H``), which no scan sees, is placed when the compiler
names it missing, and the compile retried. The first error in the file itself decides: a parse error
(``expected ...``, ``stray ...``, ``unterminated ...``) is a syntax error; an unknown name or type is not (it is
what a missing external header gives); a first error in another file, a time-out or an include that cannot be
placed gives no verdict. A header with a parse error is compiled again inside a repository file that includes
it (headers are often not self-contained), provided the preprocessor opens it there (``-H``). A C header that is
C++ (``.h`` is labelled C) is compiled as C++ too, and the result that reads further kept.

A parse error caused by an unknown macro from a missing header looks like any other parse error, so the filter
drops a file only when tree-sitter sees an error on the same line (``confirm_lines`` either side):
measured on the compiler-labelled set (benchmarks/syntax_cfamily.py), that keeps real files whose headers are
not all there while catching most stray tokens and swapped lines.

>>> check = CompileCheck()
>>> repo = Repository({"inc/point.h": "#define EXPORT\\ntypedef struct { int x, y; } point;\\n"})
>>> check.first_error("C", "src/a.c", '#include "point.h"\\nEXPORT int f(point p) { return p.x; }\\n', repo) is None
True
>>> error = check.first_error("C", "src/a.c", '#include "point.h"\\nEXPORT int f(point p) { return p.x p.y; }\\n', repo)
>>> error.line, error.parse_error
(2, True)
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

# What a repository contributes as context: the files the preprocessor can include.
CONTEXT_SUFFIXES = (".h", ".hh", ".hpp", ".hxx", ".h++", ".inc", ".inl", ".def", ".ipp", ".tcc", ".tpp",
                    ".c", ".cc", ".cpp", ".cxx")
# The first error is a parse error (the grammar's, the lexer's, the preprocessor's) rather than name lookup or
# typing, which need declarations that may be in a header the crawl does not have.
PARSE_ERROR = re.compile(
    r"expected|stray |missing terminating|unterminated|without #if|after #else|extra tokens|does not name a type|"
    r"invalid preprocessing directive|empty character constant|at end of input|unbalanced|parse error|"
    r"label at end of compound statement|before numeric constant|ISO C\+\+ forbids declaration of .* with no type|"
    r"expected unqualified-id|is not a template|template argument .* is invalid|invalid declarator")
_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"\n]+)[>"]', re.M)
_MISSING = re.compile(r"(.+?): No such file or directory")
_DIAGNOSTIC = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:\d+:)? (?P<kind>error|fatal error): (?P<message>.*)$")
HEADER_SUFFIXES = (".h", ".hh", ".hpp", ".hxx", ".h++", ".inc", ".inl", ".ipp", ".tcc", ".tpp")
_SUFFIX_DEPTH = 6


@dataclass
class Repository:
    """A repository's C-family files (repository path -> text), indexed by path suffix for include lookup."""

    files: dict[str, str] = field(default_factory=dict)
    truncated: bool = False  # some files were left out (the context's byte bound)
    held_bytes: int = 0  # bytes of the files taken through `offer`
    _by_suffix: dict[str, list[str]] | None = field(default=None, repr=False)
    _includers: dict[str, list[str]] | None = field(default=None, repr=False)

    def add(self, path: str, text: str) -> None:
        self.files[path] = text
        self._by_suffix = self._includers = None

    def offer(self, path: str, text: str, size: int, max_bytes: int) -> None:
        """Add a file of ``size`` bytes unless it would take the repository past ``max_bytes`` (then it is left out
        and the repository marked ``truncated``): the one rule both filter engines cut a context by."""
        if self.held_bytes + size > max_bytes:
            self.truncated = True
        else:
            self.held_bytes += size
            self.add(path, text)

    def includers(self, path: str) -> list[str]:
        """Repository files whose ``#include`` lines resolve to ``path``, in path order."""
        if self._includers is None:
            reverse = defaultdict(list)
            for source in sorted(self.files):
                for target in dict.fromkeys(self.resolve(m.group(2).strip(), source)
                                            for m in _INCLUDE.finditer(self.files[source])):
                    if target is not None and target != source:
                        reverse[target].append(source)
            self._includers = dict(reverse)
        return self._includers.get(path, [])

    def resolve(self, name: str, includer: str) -> str | None:
        """Repository path of ``#include name`` in ``includer``: relative to it first, then by suffix (the
        candidate sharing the longest directory prefix with the includer; ties by path)."""
        relative = posixpath.normpath(posixpath.join(posixpath.dirname(includer), name))
        if relative in self.files:
            return relative
        key = posixpath.normpath(name).lstrip("./")
        if self._by_suffix is None:
            index = defaultdict(list)
            for path in sorted(self.files):
                parts = path.split("/")
                for k in range(1, min(len(parts), _SUFFIX_DEPTH) + 1):
                    index["/".join(parts[-k:])].append(path)
            self._by_suffix = dict(index)
        candidates = self._by_suffix.get(key)
        if not candidates:
            return None
        return max(candidates, key=lambda p: (len(os.path.commonprefix([p, includer])), -len(p)))


@dataclass(frozen=True)
class CompileError:
    """The compiler's first error in the file: its line, message and whether it is a parse error."""

    line: int
    message: str
    parse_error: bool
    language: str  # the language it was compiled as (a C header may be C++)
    missing_headers: int  # includes neither the system nor the repository had (stubbed)


@cache
def _default_include_dirs(compiler: str, lang: str) -> tuple[str, ...]:
    """The compiler's own ``#include <...>`` search list (``gcc -E -v``)."""
    done = subprocess.run([compiler, "-x", lang, "-E", "-v", os.devnull], capture_output=True, text=True,
                          timeout=60)
    dirs, inside = [], False
    for line in done.stderr.splitlines():
        if line.startswith("#include <...> search starts here"):
            inside = True
        elif line.startswith("End of search list"):
            break
        elif inside:
            dirs.append(line.strip())
    return tuple(dirs)


class CompileCheck:
    """``gcc -fsyntax-only`` of one file in its repository's context (see the module text)."""

    def __init__(self, compiler: str = "gcc", timeout_s: float = 20.0,
                 system_include_dirs: tuple[str, ...] | None = None, max_missing_rounds: int = 16,
                 max_includers: int = 2, scratch_dir: str | None = None):
        self.compiler = compiler
        self.timeout_s = timeout_s
        self.system_include_dirs = tuple(system_include_dirs) if system_include_dirs is not None else None
        self.max_missing_rounds = max_missing_rounds
        self.max_includers = max_includers
        self.scratch_dir = scratch_dir

    def available(self) -> bool:
        return shutil.which(self.compiler) is not None

    def require(self) -> None:
        """Fail clearly when the compiler is missing (it ships in the Spark image; locally: apt-get install g++)."""
        if not self.available():
            raise RuntimeError(f"the C-family compile check needs `{self.compiler}` on PATH (the Spark image has it; "
                               f"here: apt-get install g++, or scripts/toolchains.sh), or set "
                               f"syntax_filter.compile_check: false")

    def _system_dirs(self, lang: str) -> tuple[str, ...]:
        if self.system_include_dirs is not None:
            return self.system_include_dirs
        return _default_include_dirs(self.compiler, lang)

    def first_error(self, language: str, path: str, text: str, repo: Repository | None = None) -> CompileError | None:
        """The first error the compiler reports in ``text`` compiled as ``path`` of ``repo``; None when it
        compiles, when its first error is in another file, or when the compiler ran out of time.

        A C file whose first error is a parse error is compiled as C++ too (``.h`` headers are labelled C): a
        clean result, a non-parse error or a later first parse error there wins."""
        repo = repo or Repository()
        result = self._compile(language, path, text, repo)
        if language == "C" and result is not None and result.parse_error:
            as_cpp = self._compile("C++", path, text, repo)
            if as_cpp is None or not as_cpp.parse_error or as_cpp.line > result.line:
                return as_cpp  # it is C++, or it reads further as C++
        return result

    def _compile(self, language: str, path: str, text: str, repo: Repository) -> CompileError | None:
        path = posixpath.normpath("/" + path).lstrip("/") or "file.c"
        run = self._run(language, path, {path: text}, repo)
        if run is None or not run[0]:
            return None
        errors, missing = run
        where, line, message = errors[0]
        if where != path:
            return None  # the first error is in another file: not this file's verdict
        first = CompileError(line, message, bool(PARSE_ERROR.search(message)), language, missing)
        if not first.parse_error or not path.endswith(HEADER_SUFFIXES):
            return first
        # A header is often not self-contained (Python's boolobject.h expects Python.h's declarations before it):
        # compiled inside a repository file that includes it, it gets the context its authors gave it. Tried: the
        # top of each of its first includers' include chains (libstdc++'s bits/regex_automaton.tcc needs <regex>,
        # not bits/regex.h), then the includer itself.
        for chain in self._contexts(path, repo):
            # The chain's files are read from the repository even where the system has a copy of the same name.
            texts = {**{p: repo.files[p] for p in chain}, path: text}
            inside = self._run(language, chain[-1], texts, repo, entered=path)
            if inside is None:
                continue
            errors, _ = inside
            if not errors:
                return None
            where, line, message = errors[0]
            if where == path:
                return CompileError(line, message, bool(PARSE_ERROR.search(message)), language, missing)
        return first

    def _contexts(self, path: str, repo: Repository, max_depth: int = 4) -> list[list[str]]:
        """Include chains to compile ``path`` inside, each ending with the file to compile: for each of its first
        ``max_includers`` includers, the chain of first includers up to its top (at most ``max_depth`` up, no
        cycles), then the includer alone."""
        out: list[list[str]] = []
        for includer in repo.includers(path)[:self.max_includers]:
            chain = [includer]
            for _ in range(max_depth):
                above = [p for p in repo.includers(chain[-1]) if p not in chain and p != path]
                if not above:
                    break
                chain.append(above[0])
            out += [c for c in (chain, [includer]) if c not in out]
        return out

    def _run(self, language: str, main: str, texts: dict[str, str], repo: Repository,
             entered: str | None = None) -> tuple[list[tuple[str, int, str]], int] | None:
        """Compile repository file ``main`` (``texts`` replacing repository contents): its errors as (repository
        path, line, message) in order, and the number of stubbed includes; None on a timeout, an include that
        cannot be stubbed, or when ``entered`` is given and the preprocessor never opened that file (it sits in a
        branch not taken, or behind an include guard already defined)."""
        lang = "c++" if language == "C++" else "c"
        system = self._system_dirs(lang)
        with tempfile.TemporaryDirectory(prefix="ccheck-", dir=self.scratch_dir) as tmp:
            layout = _Layout(Path(tmp), repo, texts, system)
            layout.add(main)
            cmd = [self.compiler, "-fsyntax-only", "-w", "-fmax-errors=3", "-x", lang,
                   "-std=gnu17" if lang == "c" else "-std=gnu++20"]
            if self.system_include_dirs is not None:
                cmd += ["-nostdinc", *[a for d in system for a in ("-isystem", d)]]
            cmd += ["-I", str(layout.spelled), "-idirafter", str(layout.stubs), str(layout.tree / main)]
            cmd += ["-H"] if entered else []
            for _ in range(self.max_missing_rounds):
                try:
                    done = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                                          timeout=self.timeout_s, cwd=tmp)
                except subprocess.TimeoutExpired:
                    log.warning("compile check of %s ran past %.0f s", main, self.timeout_s)
                    return None
                lost = next((m for m in map(_DIAGNOSTIC.match, done.stderr.splitlines())
                             if m and m.group("kind") == "fatal error" and _MISSING.match(m.group("message"))), None)
                if lost is None:
                    break
                # A computed include (``#include FT_CONFIG_H``) the scan could not see: found in the repository
                # now, or stubbed; a name that cannot be placed gives no verdict.
                includer = layout.origin.get(lost.group("file"), main)
                if not layout.include(_MISSING.match(lost.group("message")).group(1), includer, computed=True):
                    return None
            else:
                return None
            if entered is not None and not any(
                    layout.origin.get(line.lstrip(".").strip()) == entered for line in done.stderr.splitlines()
                    if line.startswith(".")):
                return None
            errors = []
            for line in done.stderr.splitlines():
                found = _DIAGNOSTIC.match(line)
                if found and found.group("kind") == "error":
                    where = layout.origin.get(found.group("file"), found.group("file"))
                    errors.append((where, int(found.group("line")), found.group("message").strip()))
            return errors, layout.missing


class _Layout:
    """The scratch tree of one compile: the file and the repository headers it reaches, each at its repository
    path (``tree``, for relative includes) and under the name it was included by (``spelled``, on ``-I``), and
    empty stubs for includes found nowhere (``stubs``, searched last)."""

    def __init__(self, root: Path, repo: Repository, texts: dict[str, str], system: tuple[str, ...]):
        self.tree, self.spelled, self.stubs = root / "tree", root / "spelled", root / "stubs"
        self.repo, self.texts, self.system = repo, texts, system
        self.origin: dict[str, str] = {}  # file system path of every copy -> repository path
        self.seen: set[tuple[str, str]] = set()
        self.missing = 0

    def text(self, path: str) -> str:
        return self.texts[path] if path in self.texts else self.repo.files[path]

    def add(self, path: str) -> None:
        """Write repository file ``path`` at its place and, transitively, what its ``#include`` lines reach."""
        todo = []
        if str(self.tree / path) not in self.origin:
            self.origin[str(self.tree / path)] = path
            _write(self.tree / path, self.text(path))
            todo.append(path)
        while todo:
            includer = todo.pop()
            for match in _INCLUDE.finditer(self.text(includer)):
                found = self.include(match.group(2).strip(), includer)
                if isinstance(found, str) and str(self.tree / found) not in self.origin:
                    self.origin[str(self.tree / found)] = found
                    _write(self.tree / found, self.text(found))
                    todo.append(found)

    def include(self, name: str, includer: str, computed: bool = False) -> str | bool:
        """Place ``#include name`` of ``includer``: the repository path it resolved to (its spelled copy
        written), True when the system has it or it was stubbed, False when it cannot be placed."""
        if (includer, name) in self.seen and not computed:
            return True
        self.seen.add((includer, name))
        found = name if name in self.texts and name not in self.repo.files else self.repo.resolve(name, includer)
        # The system's copy wins, unless the include is the file being judged (a repository that is libc or
        # libstdc++ itself: its headers must be read as they are in the document, not as installed).
        if found not in self.texts and not computed and any(os.path.isfile(os.path.join(d, name))
                                                            for d in self.system):
            return True
        placeable = ".." not in name.split("/") and not name.startswith("/")
        if found is None:
            if not placeable:
                return False
            target = self.stubs / name
            if target.exists():
                return not computed  # stubbed already and still missing: give up rather than loop
            _write(target, "")
            self.missing += 1
            return True
        if placeable:
            target = self.spelled / name
            if str(target) not in self.origin:
                self.origin[str(target)] = found
                _write(target, self.text(found))
            elif computed:
                return False
        if computed:
            self.add(found)
        return found


def _write(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8", errors="surrogateescape")
