"""Syntax filter: drop files that tree-sitter cannot parse, measured per language.

``python -m spark_jobs.filters.syntax_filter --snapshot 2026-10``

The Seed-Coder report drops files with syntax errors found by tree-sitter. A plain "the tree has an error node"
rule is right for Python and JavaScript (tree-sitter parses every valid stdlib / npm file without one) but wrong
for C-family code, where the preprocessor defeats a context-free grammar: 39% of the real headers in /usr/include
have an error node. So the measure is the *error share*: bytes of tokens tree-sitter could not place in any
well-formed construct (direct token children of ERROR nodes; well-formed subtrees inside an ERROR are not counted),
plus one byte per MISSING (inserted) token, over the file's bytes. A file is dropped when its share exceeds its
language's threshold: 0 (any error) by default, larger for the macro-heavy languages; ``benchmarks/syntax_filter.py``
is how the thresholds were chosen (notes/issue-5.md has the numbers).

Bounds: files over ``max_bytes`` are not parsed (reason ``syntax_too_large``); a parse running longer than
``max_parse_seconds`` is cancelled through tree-sitter's progress callback (reason ``syntax_timeout``). The
time bound is ~10x the parse time of the largest allowed normal file, so only pathological inputs hit it and
the output stays deterministic in practice. Languages without a bundled grammar pass through and are counted.
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
from spark_jobs.filters.runner import FilterStageConfig, run_filter_stage

STAGE = "syntax_filter"

# Thresholds on the error share, chosen on real files (benchmarks/syntax_filter.py --corpus headers): the smallest
# value that keeps >= 98% of valid real headers. Unlisted languages use `default_max_error_share` (0: any error).
MACRO_LANGUAGE_THRESHOLDS = {"C": 0.02, "C++": 0.02, "CUDA": 0.02, "Objective-C": 0.02, "HLSL": 0.02, "GLSL": 0.02}


class SyntaxFilterConfig(FilterStageConfig):
    input: str = "near_dedup"
    # Files larger than this are dropped unparsed (reason syntax_too_large): parse cost grows with size and the
    # crawl's own cap is larger. 1 MiB parses in about a second.
    max_bytes: int = Field(1 << 20, ge=1)
    # Wall-clock bound of one parse; a cancelled parse drops the file (reason syntax_timeout).
    max_parse_seconds: float = Field(10.0, gt=0)
    # Error share above which a file is dropped, for languages not in `max_error_share`.
    default_max_error_share: float = Field(0.0, ge=0, le=1)
    # Per-language thresholds (language names as in lake/languages.py).
    max_error_share: dict[str, float] = dict(MACRO_LANGUAGE_THRESHOLDS)


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
            for child in node.children or [node]:
                if child is node or child.child_count == 0:
                    bad_bytes += child.end_byte - child.start_byte
                elif child.has_error or child.is_error or not child.is_named:
                    stack.append(child)
        elif node.has_error:
            stack.extend(node.children)
            continue
        else:
            continue
        line = node.start_point[0] + 1
        first = line if first is None else min(first, line)
    return min(1.0, bad_bytes / max(size, 1)), first


class SyntaxFilter(BaseFilter):
    """Keep a file unless tree-sitter finds more unparseable code than its language tolerates."""

    name = "syntax_error"

    def __init__(self, max_bytes: int = 1 << 20, max_parse_seconds: float = 10.0,
                 default_max_error_share: float = 0.0, max_error_share: dict[str, float] | None = None):
        super().__init__()
        self.max_bytes = max_bytes
        self.max_parse_seconds = max_parse_seconds
        self.default_max_error_share = default_max_error_share
        self.max_error_share = dict(MACRO_LANGUAGE_THRESHOLDS if max_error_share is None else max_error_share)

    @classmethod
    def from_config(cls, conf: SyntaxFilterConfig) -> SyntaxFilter:
        return cls(conf.max_bytes, conf.max_parse_seconds, conf.default_max_error_share, conf.max_error_share)

    def threshold(self, language: str) -> float:
        return self.max_error_share.get(language, self.default_max_error_share)

    def filter(self, doc: dict[str, Any]) -> bool | tuple[bool, str] | tuple[bool, str, str]:
        language = doc.get("language") or language_of(doc.get("path") or "") or ""
        grammar = grammar_of(language)
        parser = parser_for(grammar) if grammar else None
        if parser is None:
            self.count(f"no_grammar:{language or 'unknown'}")
            return True
        source = doc["content"].encode("utf-8")
        if len(source) > self.max_bytes:
            return False, "syntax_too_large", f"{len(source)} bytes > max_bytes {self.max_bytes}"
        try:
            tree = parse(parser, source, self.max_parse_seconds)
        except ParseTimeout as err:
            return False, "syntax_timeout", str(err)
        self.count(f"parsed:{language}")
        share, line = error_share(tree.root_node, len(source))
        if share > self.threshold(language):
            self.count(f"syntax_error:{language}")
            return False, "syntax_error", f"{language}: error share {share:.4f} > {self.threshold(language)}, " \
                                          f"first error at line {line}"
        if share > 0:
            self.count(f"tolerated_errors:{language}")
        return True


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(STAGE, "Drop files with syntax errors (tree-sitter, per-language error share).")

    def body(args, cfg) -> None:
        conf = cfg.stage(STAGE, SyntaxFilterConfig)
        run_filter_stage(STAGE, args.snapshot, cfg, conf, lambda _spark: SyntaxFilter.from_config(conf))

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    sys.exit(main())
