"""C-family tokens and the preprocessor-aware bracket check.

A C or C++ file cannot be parsed outside its build: its macros and types come from headers the crawl does not
have. Its token stream, though, can be checked without them: comments, string and character literals must be
closed, and brackets must nest (``(`` closed by ``)``, never by ``}``) on every path the preprocessor can take.
That is a compiler's lexer and its bracket discipline, not a heuristic, and it holds for macro-heavy code: a
macro that hides a bracket (``#define BEGIN {``) hides it on the same directive line the check skips.

Preprocessor paths: each branch of an ``#if``/``#elif``/``#else`` group starts from the bracket state at the
``#if``, and the first branch (the first whose condition is not a literal ``0``) carries on after ``#endif``.
This accepts the idioms of real code (``#ifdef __cplusplus`` / ``extern "C" {`` / ``#endif``, alternative
function heads in each branch) and still sees an unbalanced branch. ``#if 0`` blocks are dead text and skipped.

>>> check_brackets("int f(void) { return (1); }\\n")
>>> check_brackets("int f(void) { return (1; }\\n").kind
'mismatched'
>>> check_brackets('#ifdef __cplusplus\\nextern "C" {\\n#endif\\nint x;\\n#ifdef __cplusplus\\n}\\n#endif\\n')
>>> check_brackets("#if 0\\n{ don't\\n#endif\\n")
>>> check_brackets("int f() {\\n  return 1;\\n").kind
'unclosed'
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

# One alternative per token class; the order matters (comments before '/', raw strings before identifiers).
_TOKEN = re.compile(r"""
  (?P<nl>\n)
| (?P<ws>(?:[ \t\r\f\v]|\\\r?\n)+)
| (?P<line_comment>//(?:[^\n\\]|\\.|\\\n)*)
| (?P<block_comment>/\*.*?\*/)
| (?P<open_comment>/\*)
| (?P<raw_string>(?:u8|[uUL])?R"(?P<delim>[^ ()\\\t\n"]{0,16})\(.*?\)(?P=delim)")
| (?P<string>(?:u8|[uUL])?"(?:[^"\\\n]|\\.|\\\n)*")
| (?P<char>(?:u8|[uUL])?'(?:[^'\\\n]|\\.|\\\n)+')
| (?P<open_quote>(?:u8|[uUL])?R?["'])
| (?P<number>\.?[0-9](?:[eEpP][+-]|'[0-9A-Za-z]|[0-9A-Za-z_.])*)
| (?P<ident>[A-Za-z_$\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*)
| (?P<punct>%:%:|\.\.\.|<<=|>>=|->\*|<=>|::|->|\+\+|--|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^!=<>]=|\#\#|<:|:>|<%|%>|%:|[][(){};:,.?~!%^&*+\-=<>/|#@`\\])
| (?P<other>.)
""", re.VERBOSE | re.DOTALL)

OPENERS = {"(": ")", "[": "]", "{": "}", "<:": ":>", "<%": "%>"}
CLOSERS = {v: k for k, v in OPENERS.items()}
_CANON = {"<:": "[", ":>": "]", "<%": "{", "%>": "}"}


class Token(NamedTuple):
    kind: str  # ident | number | string | char | punct | other | directive | open_comment | open_quote
    text: str
    start: int  # offset in the source (characters)
    line: int  # 1-based


def tokens(source: str) -> Iterator[Token]:
    """Code tokens of ``source``, comments and whitespace dropped; a preprocessor directive is one token.

    >>> [(t.kind, t.text) for t in tokens('#define X(a) a\\nint s = X("}"); // }\\n')]
    [('directive', '#define X(a) a'), ('ident', 'int'), ('ident', 's'), ('punct', '='), ('ident', 'X'), \
('punct', '('), ('string', '"}"'), ('punct', ')'), ('punct', ';')]
    >>> [t.kind for t in tokens("x = 'a' + 1'000;")]
    ['ident', 'punct', 'char', 'punct', 'number', 'punct']
    """
    line, line_start, directive = 1, True, None
    for match in _TOKEN.finditer(source):
        kind, text = match.lastgroup, match.group()
        if kind == "delim":  # the raw string's delimiter group can be the last one that matched
            kind = "raw_string"
        newlines = text.count("\n")
        if kind == "nl":
            if directive is not None:
                yield Token("directive", source[directive[0]:match.start()].rstrip(), directive[0], directive[1])
                directive = None
            line += 1
            line_start = True
            continue
        if kind in ("ws", "line_comment", "block_comment"):
            line += newlines
            continue
        if directive is not None:
            line += newlines
            continue
        if line_start and text in ("#", "%:"):
            directive = (match.start(), line)
            line_start = False
            continue
        line_start = False
        if kind == "raw_string":
            kind = "string"
        yield Token(kind, text, match.start(), line)
        line += newlines
    if directive is not None:
        yield Token("directive", source[directive[0]:].rstrip(), directive[0], directive[1])


_DIRECTIVE = re.compile(r"^(?:#|%:)\s*([A-Za-z_]*)\s*(.*)", re.DOTALL)
_COMMENTS = re.compile(r"/\*.*?\*/|//.*", re.DOTALL)


def directive_parts(text: str) -> tuple[str, str]:
    """(name, argument) of a directive token, comments removed.

    >>> directive_parts("#  if 0 /* off */"), directive_parts("#endif")
    (('if', '0'), ('endif', ''))
    """
    match = _DIRECTIVE.match(text)
    if not match:
        return "", ""
    return match.group(1), _COMMENTS.sub(" ", match.group(2)).replace("\\\n", " ").strip()


@dataclass(frozen=True)
class BracketError:
    kind: str  # unclosed | unopened | mismatched | open_comment | open_quote | open_conditional | stray_directive
    line: int
    detail: str


@dataclass
class _Group:
    """One #if group: the bracket stack at its #if, and the state the chosen branch left."""

    entry: list[tuple[str, int]]
    live: bool  # the group is inside live code
    outer_taken: bool = True  # the group is on the first path
    chosen: bool = False  # some earlier branch was taken
    branch_live: bool = False
    result: list[tuple[str, int]] | None = None


def check_brackets(source: str) -> BracketError | None:
    """The first lexical or bracket error of a C-family source on any preprocessor path, or None."""
    return check_and_project(source)[0]


def check_and_project(source: str) -> tuple[BracketError | None, str]:
    """One pass over the tokens: :func:`check_brackets`'s answer and :func:`one_path`'s text together."""
    out = list(source)
    stack: list[tuple[str, int]] = []
    groups: list[_Group] = []
    live = True  # checked: every branch that is not `#if 0`
    taken = True  # on the first path: the branches the projection keeps
    error: BracketError | None = None
    for tok in tokens(source):
        kind, text, start, line = tok
        if kind == "directive":
            _blank(out, start, start + len(text))
            name, arg = directive_parts(text)
            if name in ("if", "ifdef", "ifndef"):
                group = _Group(list(stack), live, outer_taken=taken)
                groups.append(group)
                group.branch_live = live and not (name == "if" and _literal_false(arg))
                group.chosen = group.branch_live
                live = group.branch_live
                taken = taken and group.branch_live
            elif name in ("elif", "else", "elifdef", "elifndef"):
                if not groups:
                    error = error or BracketError("stray_directive", line, f"#{name} without #if")
                    continue
                group = groups[-1]
                _close_branch(group, stack)
                stack = list(group.entry)
                false = name == "elif" and _literal_false(arg)
                group.branch_live = group.live and not false
                taken = group.outer_taken and group.branch_live and not group.chosen
                if group.branch_live and not group.chosen:
                    group.chosen = True
                live = group.branch_live
            elif name == "endif":
                if not groups:
                    error = error or BracketError("stray_directive", line, "#endif without #if")
                    continue
                group = groups.pop()
                _close_branch(group, stack)
                stack = group.result if group.result is not None else list(group.entry)
                live, taken = group.live, group.outer_taken
            continue
        if not taken:
            _blank(out, start, start + len(text))
        if not live or error is not None:
            continue
        if kind in ("open_comment", "open_quote"):
            error = BracketError(kind, line, f"{text!r} never closed")
        elif kind == "punct":
            text = _CANON.get(text, text)
            if text in _OPEN:
                stack.append((text, line))
            elif text in _CLOSE:
                if not stack:
                    error = BracketError("unopened", line, f"{text!r} closes nothing")
                else:
                    opener, opened = stack.pop()
                    if OPENERS[opener] != text:
                        error = BracketError("mismatched", line, f"{text!r} closes {opener!r} of line {opened}")
    if error is None and groups:
        error = BracketError("open_conditional", len(source.splitlines()), "#if without #endif")
    if error is None and stack:
        opener, line = stack[-1]
        error = BracketError("unclosed", line, f"{opener!r} never closed")
    return error, "".join(out)


_OPEN = frozenset("([{")
_CLOSE = frozenset(")]}")


def _close_branch(group: _Group, stack: list[tuple[str, int]]) -> None:
    """Keep the stack of the first live branch: that is the path that continues after #endif."""
    if group.branch_live and group.result is None:
        group.result = list(stack)


def _literal_false(condition: str) -> bool:
    """``#if 0`` and its spellings: a block the preprocessor always skips."""
    return condition.strip("() ") in ("0", "false", "0L", "0U")


def one_path(source: str) -> str:
    """``source`` as the preprocessor's first path sees it: directive lines and the text of branches not taken
    (``#else`` after a taken ``#if``, ``#if 0``) blanked with spaces, so offsets and line numbers stay.

    >>> one_path('#ifdef __cplusplus\\nextern "C" {\\n#else\\nint x;\\n#endif\\n')
    '                  \\nextern "C" {\\n     \\n      \\n      \\n'
    """
    return check_and_project(source)[1]


def _blank(chars: list[str], start: int, end: int) -> None:
    for i in range(start, end):
        if chars[i] != "\n":
            chars[i] = " "
