"""Syntax filter: drop files that tree-sitter cannot parse, measured per language.

``python -m spark_jobs.filters.syntax_filter --snapshot 2026-10``

The Seed-Coder report drops files with syntax errors found by tree-sitter. A plain "the tree has an error node"
rule is right for Python and JavaScript (tree-sitter parses 99.7% of real stdlib / npm files without one) but
wrong for C-family code, where the preprocessor defeats a context-free grammar: 48-63% of the distinct real C
headers in /usr/include have an error node. So the measure is the *error share*: bytes of tokens tree-sitter
could not place in any well-formed construct (direct token children of ERROR nodes; well-formed subtrees inside
an ERROR are not counted), plus one byte per ERROR and per MISSING (inserted) node, over the file's bytes. A file
is dropped when its share exceeds its language's threshold: 0 (any error) by default, larger for the macro-heavy
and loosely-parsed languages. ``benchmarks/syntax_filter.py`` and ``benchmarks/syntax_languages.py`` are how the
thresholds were chosen (benchmarks/RESULTS-filters.md has the numbers). Languages whose grammar fails on most
real files (SQL dialects, Tcl...) pass unchecked, counted; so do languages without a bundled grammar.

C family: the error share alone lets most broken C and C++ through (a stray token or a lost brace is a few bytes
of a large file), and tree-sitter's error nodes cannot tell a broken file from a macro it does not know. So C-family
files are first checked on their token stream (:mod:`spark_jobs.filters.c_tokens`): comments, strings and character
literals closed, brackets nested on every preprocessor path, ``#if`` groups closed. A failure there is a syntax
error whatever the share (reason ``syntax_error``, detail naming the bracket and line). The error share is then
measured on the preprocessor's first path (directives and branches not taken blanked, offsets kept): tree-sitter
cannot parse a construct split over ``#if`` branches, and that was most of its errors on valid files. C and C++
files that pass both are compiled against their repository's own headers (:mod:`spark_jobs.filters.c_compile`;
the runner hands each such document its repository from the crawl) and dropped when the compiler's first error is
a parse error that tree-sitter confirms within ``confirm_lines``: that catches the stray tokens and swapped lines
the share lets through. Measured against gcc with ``benchmarks/syntax_cfamily.py`` (benchmarks/RESULTS-filters.md).

Bounds: files over ``max_bytes`` are not parsed (reason ``syntax_too_large``); a parse running longer than
``max_parse_seconds`` is cancelled through tree-sitter's progress callback (reason ``syntax_timeout``). The
time bound is ~10x the parse time of the largest allowed normal file, so only pathological inputs hit it and
the output stays deterministic in practice.
"""

from __future__ import annotations

import sys
import time
from functools import cache
from typing import Any

from pydantic import Field

from lake.cli import run_stage, stage_parser
from lake.languages import grammar_of, language_of
from spark_jobs.filters.base import BaseFilter
from spark_jobs.filters.c_compile import CompileCheck
from spark_jobs.filters.c_tokens import check_and_project
from spark_jobs.filters.runner import FilterStageConfig, RepositoryContext, run_filter_stage

STAGE = "syntax_filter"

# Thresholds on the error share, chosen on real files (installed software: shipped code is code that ran), with
# benchmarks/syntax_filter.py (C, C++) and benchmarks/syntax_languages.py (the rest): each is about the share that
# keeps 98% of distinct real files of the language. C: 0.051 on 1,134 /usr/include headers with the C++ fallback;
# C++: 0.040 on 1,000 libstdc++/LLVM headers; so 0.05 for the C family (CUDA, Objective-C, HLSL and GLSL share the
# preprocessor; no local corpus measured them). Unlisted languages use `default_max_error_share` (0: any error),
# which drops 0.3% of real Python and JavaScript and keeps precision >= 0.997 on seeded corruptions.
# `.h` files are labelled C by extension but many are C++ (LLVM, ICU, Qt...): a C file that parses badly is measured
# with the C++ grammar too and gets the better share. Broken C is broken C++ as well, so this costs no recall.
# C++ is 0.1 since the first-path measure (#18): on 200 compiler-checked libstdc++ / LLVM / node files, 0.05 dropped
# 3.5% of them and 0.1 drops 1.5% (0.9% of a wider pool of 1,500), for 0.011 of recall (benchmarks/syntax_cfamily.py).
FALLBACK_GRAMMARS = {"C": ("cpp",)}
MEASURED_THRESHOLDS = {
    "C": 0.05, "C++": 0.1, "CUDA": 0.05, "Objective-C": 0.05, "HLSL": 0.05, "GLSL": 0.05,
    "CSS": 0.02, "Fortran": 0.09, "HTML": 0.01, "Makefile": 0.03, "Perl": 0.01, "Shell": 0.005,
}
# Grammars that fail on most real files of the language (SQL: dialects; INI: .cfg/.conf files are not INI;
# Tcl, Vim Script: 21-90% of real files have errors; CSV: quoting variants): their files pass unchecked, counted.
UNCHECKED_LANGUAGES = ("CSV", "INI", "SQL", "Tcl", "Vim Script")
# Languages that go through the C preprocessor: their token stream is checked before the tree-sitter measure.
TOKEN_CHECKED_LANGUAGES = ("C", "C++", "CUDA", "Objective-C", "HLSL", "GLSL")


class SyntaxFilterConfig(FilterStageConfig):
    input: str = "near_dedup"
    # Files larger than this are dropped unparsed (reason syntax_too_large): parse cost grows with size. The crawl
    # already caps files at 1 MB, so this guards inputs from other sources; 1 MiB parses in about a second.
    max_bytes: int = Field(1 << 20, ge=1)
    # Wall-clock bound of one parse; a cancelled parse drops the file (reason syntax_timeout).
    max_parse_seconds: float = Field(10.0, gt=0)
    # Error share above which a file is dropped, for languages not in `max_error_share`.
    default_max_error_share: float = Field(0.0, ge=0, le=1)
    # Per-language thresholds (language names as in lake/languages.py).
    max_error_share: dict[str, float] = dict(MEASURED_THRESHOLDS)
    # C and C++ files that pass the token check and the error share are compiled against their repository's
    # headers (spark_jobs/filters/c_compile.py; needs `compiler` on PATH, which the Spark image carries) and dropped
    # when the compiler's first error is a parse error on a line where tree-sitter also sees one (within
    # `confirm_lines`). Measured against gcc on benchmarks/syntax_cfamily.py's labelled set.
    compile_check: bool = True
    compile_languages: tuple[str, ...] = ("C", "C++")
    compiler: str = "gcc"
    compile_timeout_s: float = Field(20.0, gt=0)
    confirm_lines: int = Field(1, ge=0)
    # Explicit system include directories (with -nostdinc); unset: the compiler's own (the image's libc, kernel
    # uapi and libstdc++ headers).
    system_include_dirs: tuple[str, ...] | None = None
    # The stage whose files give each repository's headers: the crawl has whole trees (dedup removed copies of
    # shared headers from all but one repository). Null, or a stage not committed for the snapshot: the input.
    context_input: str | None = "crawl"
    # A repository's context is cut at this many bytes of C-family files (in path order; metric context_truncated).
    max_context_bytes: int = Field(256 << 20, ge=0)
    # Languages whose grammar cannot judge real files: passed through unparsed (metric unchecked:<language>).
    unchecked_languages: tuple[str, ...] = UNCHECKED_LANGUAGES
    # Languages whose comments, literals, brackets and #if groups must close on every preprocessor path.
    token_checked_languages: tuple[str, ...] = TOKEN_CHECKED_LANGUAGES


@cache
def parser_for(grammar: str):
    """One tree-sitter parser per grammar per process: Spark reuses its Python workers, so each executor process
    loads a grammar once for the whole stage. None when the grammar pack lacks the grammar."""
    from tree_sitter_language_pack import get_parser

    try:
        return get_parser(grammar)
    except (LookupError, ValueError, RuntimeError):
        return None


class ParseTimeout(RuntimeError):
    pass


def parse(parser, source: bytes, max_seconds: float):
    """The tree of ``source``, or ParseTimeout after ``max_seconds`` (cancelled via the progress callback)."""
    deadline = time.monotonic() + max_seconds

    def read(offset: int, _point) -> bytes:
        return source[offset: offset + 65536]

    def past_deadline(_offset: int, _has_error: bool) -> bool:
        return time.monotonic() > deadline

    try:
        return parser.parse(read, progress_callback=past_deadline)
    except ValueError as err:  # tree-sitter reports a cancelled parse as "Parsing failed"
        parser.reset()  # a cancelled parser resumes the old parse on its next call unless reset
        raise ParseTimeout(f"parse took longer than {max_seconds}s") from err


def error_share(root, size: int) -> tuple[float, int | None]:
    """(share of unparseable bytes, 1-based line of the first error or None) of a parsed tree.

    >>> p = parser_for("python")
    >>> error_share(p.parse(b"x = 1\\n").root_node, 6)
    (0.0, None)
    >>> share, line = error_share(p.parse(b"x = 1\\ny = (2\\n").root_node, 13)
    >>> share > 0, line
    (True, 2)

    Every tree with ``has_error`` gets a share above 0, even when the only error is a MISSING token that no
    ``children`` list shows (tree-sitter-c hides the MISSING newline of a ``#define`` whose comment is followed by
    a space that way):

    >>> c = parser_for("c").parse(b"#define B 1 /* x */ \\n").root_node
    >>> c.has_error, error_share(c, 21)[0] > 0
    (True, True)
    """
    if not root.has_error:
        return 0.0, None
    bad_bytes, first = 0, None
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_missing:
            bad_bytes += 1
        elif node.is_error:
            bad_bytes += 1  # the error itself, even when all it holds are well-formed pieces (a dangling decorator)
            for child in node.children or [node]:
                if child is node or child.child_count == 0:
                    bad_bytes += child.end_byte - child.start_byte
                elif child.has_error or child.is_error or not child.is_named:
                    stack.append(child)
        elif node.has_error:
            children = node.children
            stack.extend(children)
            if any(c.has_error or c.is_error or c.is_missing for c in children):
                continue
            bad_bytes += 1  # the error is in no child: a zero-width MISSING token tree-sitter keeps out of `children`
        else:
            continue
        line = node.start_point[0] + 1
        first = line if first is None else min(first, line)
    return min(1.0, bad_bytes / max(size, 1)), first


def error_lines(root) -> list[int]:
    """1-based lines that an ERROR or MISSING node covers (a MISSING token no child list shows: its parent's
    first line), sorted.

    >>> error_lines(parser_for("c").parse(b"int a;\\nint b = (1;\\nint c;\\n").root_node)
    [2]
    """
    lines: set[int] = set()
    stack = [root] if root.has_error else []
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            first, last = node.start_point[0], node.end_point[0]
            if last > first and node.end_point[1] == 0:
                last -= 1  # ends at the start of a line: that line is not covered
            lines.update(range(first + 1, last + 2))
        elif node.has_error:
            children = node.children
            stack.extend(c for c in children if c.has_error or c.is_error or c.is_missing)
            if not any(c.has_error or c.is_error or c.is_missing for c in children):
                lines.add(node.start_point[0] + 1)
    return sorted(lines)


# Python errors tree-sitter's recovery leaves unmarked: a block without a statement (what truncating a file right
# after `def f():` leaves) and a `try` without `except`/`finally`. They were 30 of the 31 missed corruptions of
# the seeded benchmark. Blocks are found with a query, not a Python tree walk, so the check costs ~10% of a parse.
_PYTHON_STRUCTURE = "(block) @block (try_statement) @try"
_TRY_ENDINGS = frozenset({"except_clause", "except_group_clause", "finally_clause"})


@cache
def _structure_query(grammar: str):
    if grammar != "python":
        return None
    from tree_sitter import Query
    from tree_sitter_language_pack import get_language

    return Query(get_language(grammar), _PYTHON_STRUCTURE)


def structure_errors(grammar: str, root) -> tuple[int, int | None]:
    """(count, first 1-based line) of the grammar's unmarked structural errors (Python only).

    >>> structure_errors("python", parser_for("python").parse(b"x = 1\\nif x:\\n    # todo\\n").root_node)
    (1, 2)
    """
    query = _structure_query(grammar)
    if query is None:
        return 0, None
    from tree_sitter import QueryCursor

    bad = []
    for name, nodes in QueryCursor(query).captures(root).items():
        for node in nodes:
            if name == "block":
                if all(child.type == "comment" for child in node.named_children):
                    bad.append((node.parent or node).start_point[0] + 1)
            elif not any(child.type in _TRY_ENDINGS for child in node.children):
                bad.append(node.start_point[0] + 1)
    return len(bad), min(bad, default=None)


class SyntaxFilter(BaseFilter):
    """Keep a file unless tree-sitter finds more unparseable code than its language tolerates."""

    name = "syntax_error"

    def __init__(self, max_bytes: int = 1 << 20, max_parse_seconds: float = 10.0,
                 default_max_error_share: float = 0.0, max_error_share: dict[str, float] | None = None,
                 unchecked_languages: tuple[str, ...] = UNCHECKED_LANGUAGES,
                 token_checked_languages: tuple[str, ...] = TOKEN_CHECKED_LANGUAGES,
                 compile_check: CompileCheck | None = None, compile_languages: tuple[str, ...] = ("C", "C++"),
                 confirm_lines: int = 1):
        super().__init__()
        self.token_checked_languages = frozenset(token_checked_languages)
        self.max_bytes = max_bytes
        self.max_parse_seconds = max_parse_seconds
        self.default_max_error_share = default_max_error_share
        self.max_error_share = dict(MEASURED_THRESHOLDS if max_error_share is None else max_error_share)
        self.unchecked_languages = frozenset(unchecked_languages)
        self.compile_check = compile_check
        self.confirm_lines = confirm_lines
        # The runner hands these languages' documents their repository (``self.repository``, a c_compile.Repository).
        self.context_languages = frozenset(compile_languages) if compile_check is not None else frozenset()

    @classmethod
    def from_config(cls, conf: SyntaxFilterConfig) -> SyntaxFilter:
        check = None
        if conf.compile_check:
            check = CompileCheck(conf.compiler, conf.compile_timeout_s, conf.system_include_dirs)
            check.require()
        return cls(conf.max_bytes, conf.max_parse_seconds, conf.default_max_error_share, conf.max_error_share,
                   conf.unchecked_languages, conf.token_checked_languages, check, conf.compile_languages,
                   conf.confirm_lines)

    def threshold(self, language: str) -> float:
        return self.max_error_share.get(language, self.default_max_error_share)

    def measure(self, language: str, grammar: str, source: bytes) -> tuple[float, int | None]:
        """(error share, first error line) of ``source``: the best over the language's grammar and its fallbacks.

        Raises ParseTimeout when a parse runs past ``max_parse_seconds``."""
        share, line, _root = self.measure_tree(language, grammar, source)
        return share, line

    def measure_tree(self, language: str, grammar: str, source: bytes) -> tuple[float, int | None, Any]:
        """:meth:`measure` and the tree it was measured on (None when no parser loaded)."""
        best: tuple[float, int | None, Any] | None = None
        for name in (grammar, *FALLBACK_GRAMMARS.get(language, ())):
            parser = parser_for(name)
            if parser is None:
                continue
            root = parse(parser, source, self.max_parse_seconds).root_node
            share, line = error_share(root, len(source))
            unmarked, unmarked_line = structure_errors(name, root)
            if unmarked:
                share = min(1.0, share + unmarked / max(len(source), 1))
                line = min(filter(None, (line, unmarked_line)))
            if best is None or share < best[0]:
                best = (share, line, root)
            if share <= self.threshold(language):
                break
        return best if best is not None else (0.0, None, None)

    def filter(self, doc: dict[str, Any]) -> bool | tuple[bool, str] | tuple[bool, str, str]:
        language = doc.get("language") or language_of(doc.get("path") or "") or ""
        grammar = grammar_of(language)
        if grammar is None or parser_for(grammar) is None:
            self.count(f"no_grammar:{language or 'unknown'}")
            return True
        if language in self.unchecked_languages:
            self.count(f"unchecked:{language}")
            return True
        source = doc["content"].encode("utf-8")
        if len(source) > self.max_bytes:
            return False, "syntax_too_large", f"{len(source)} bytes > max_bytes {self.max_bytes}"
        if language in self.token_checked_languages:
            broken, first_path = check_and_project(doc["content"])
            if broken is not None:
                self.count(f"syntax_error:{language}")
                self.count(f"token_error:{broken.kind}")
                return False, "syntax_error", f"{language}: {broken.kind} at line {broken.line}: {broken.detail}"
            source = first_path.encode("utf-8")
        try:
            share, line, root = self.measure_tree(language, grammar, source)
        except ParseTimeout as err:
            return False, "syntax_timeout", str(err)
        self.count(f"parsed:{language}")
        if share > self.threshold(language):
            self.count(f"syntax_error:{language}")
            return False, "syntax_error", f"{language}: error share {share:.4f} > {self.threshold(language)}, " \
                                          f"first error at line {line}"
        if language in self.context_languages:
            verdict = self.compiled(language, doc, root)
            if verdict is not True:
                return verdict
        if share > 0:
            self.count(f"tolerated_errors:{language}")
        return True

    def compiled(self, language: str, doc: dict[str, Any], root) -> bool | tuple[bool, str, str]:
        """The compile check (:mod:`spark_jobs.filters.c_compile`) of a C/C++ file that passed the tree-sitter
        measure: dropped when the compiler's first error is a parse error and tree-sitter sees an error within
        ``confirm_lines`` of it (a lone compiler error is what an unknown macro from a missing header gives)."""
        repository = self.repository
        error = self.compile_check.first_error(language, doc.get("path") or "file", doc["content"], repository)
        self.count(f"compiled:{language}")
        if repository is not None and repository.truncated:
            self.count("context_truncated")
        if error is None or not error.parse_error:
            return True
        near = [n for n in error_lines(root) if abs(n - error.line) <= self.confirm_lines] if root else []
        if not near:
            self.count(f"compile_error_unconfirmed:{language}")
            return True
        self.count(f"syntax_error:{language}")
        self.count(f"compile_error:{language}")
        return False, "syntax_error", (f"{language}: compiler ({error.language}): {error.message[:200]} at line "
                                       f"{error.line}; tree-sitter error at line {near[0]}")


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(STAGE, "Drop files with syntax errors (tree-sitter, per-language error share).")

    def body(args, cfg) -> None:
        conf = cfg.stage(STAGE, SyntaxFilterConfig)
        context = RepositoryContext(stage=conf.context_input, max_bytes=conf.max_context_bytes)
        run_filter_stage(STAGE, args.snapshot, cfg, conf, lambda _spark: SyntaxFilter.from_config(conf), context)

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy: Spark workers unpickle the step by its module's name.
    from spark_jobs.filters.syntax_filter import main as importable_main

    sys.exit(importable_main())
