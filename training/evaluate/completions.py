"""Turning raw generations into what is judged: cut at stop sequences, and the FIM middle's comparisons."""

from __future__ import annotations

from collections.abc import Sequence


def truncate(text: str, stops: Sequence[str]) -> str:
    """``text`` up to (not including) the first stop sequence.

    >>> truncate("    return a + b\\n\\ndef other():\\n    pass", ["\\ndef ", "\\nclass "])
    '    return a + b\\n'
    >>> truncate("    return 1", ["\\ndef "])
    '    return 1'
    """
    cut = len(text)
    for stop in stops:
        at = text.find(stop)
        if at != -1:
            cut = min(cut, at)
    return text[:cut]


def normalized_lines(text: str) -> list[str]:
    """Lines without trailing whitespace, trailing blank lines dropped (indentation kept: it is Python)."""
    return [line.rstrip() for line in text.rstrip().split("\n")] if text.strip() else []


def exact_match(generated: str, middle: str) -> bool:
    """The infilled middle equals the masked one, up to trailing whitespace.

    >>> exact_match("    return x  ", "    return x\\n")
    True
    >>> exact_match("return x", "    return x\\n")
    False
    """
    return normalized_lines(generated) == normalized_lines(middle)


def fill(prefix: str, generated: str, middle: str, suffix: str) -> str:
    """The program with the generated middle; a line break the masked middle ended with is kept.

    >>> fill("def f():\\n", "    return 1", "    return 2\\n", "print(f())\\n")
    'def f():\\n    return 1\\nprint(f())\\n'
    """
    if middle.endswith("\n") and not generated.endswith("\n"):
        generated += "\n"
    return prefix + generated + suffix
