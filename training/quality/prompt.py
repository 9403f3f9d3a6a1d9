"""The oracle's rating prompt (versioned) and the parser of its answers.

The wording is ours; its content follows the Seed-Coder report: four criteria (readability, modularity,
clarity, reusability), a 0-10 scale, the zero-score policy (configuration, data files with long literals,
little or no logic, auto-generated code), the ``{LANGUAGE}`` and ``{CONTENT}`` slots, and an answer that is a
short explanation ending in ``Rating: [[X]]``. Every label records :data:`PROMPT_VERSION`, so labels made with
different wordings are never mixed silently; change the version whenever the text changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROMPT_VERSION = "seedcoder-quality-v1"

RATING_PROMPT = """\
You are an experienced software engineer reviewing source code for a training corpus of code models.
Rate the quality of the following {LANGUAGE} file on a scale from 0 to 10 by these four criteria:

1. Readability: clear names, consistent formatting, comments or docstrings where they help.
2. Modularity: logic split into cohesive functions, classes or modules of sensible size.
3. Clarity: straightforward control flow, no needless complexity, no large blocks of dead or commented-out code.
4. Reusability: the code solves a general problem and could be used or adapted elsewhere.

Zero-score policy. Give a rating of 0, whatever else is true, if the file is any of:
- mostly configuration, or a data file (long literal lists, tables, embedded binary or encoded blobs);
- code with little or no logic (only constants, imports, trivial declarations);
- auto-generated code (generator banners, "do not edit" headers, minified or machine-written output).

First explain your assessment in a few sentences, then give the rating on the last line in exactly this
format: Rating: [[X]] where X is an integer from 0 to 10.

```{LANGUAGE}
{CONTENT}
```
"""

TRUNCATION_MARK = "\n... [file truncated for rating] ..."
_RATING = re.compile(r"Rating:\s*\[\[\s*([+-]?\d+(?:\.\d+)?)\s*\]\]", re.IGNORECASE)


def render(language: str, content: str, max_chars: int) -> str:
    """The prompt for one file; a file over ``max_chars`` is cut at the last line break before the limit.

    >>> "```Python\\nx = 1\\n```" in render("Python", "x = 1", 100)
    True
    """
    return RATING_PROMPT.replace("{LANGUAGE}", language).replace("{CONTENT}", clip(content, max_chars))


def clip(content: str, max_chars: int) -> str:
    """Cut ``content`` to at most ``max_chars`` characters at a line boundary, marking the cut.

    >>> clip("a\\nbb\\nccc", 5)
    'a\\nbb\\n... [file truncated for rating] ...'
    """
    if len(content) <= max_chars:
        return content
    head = content[:max_chars]
    cut = head.rfind("\n")
    return (head[:cut] if cut > 0 else head) + TRUNCATION_MARK


@dataclass(frozen=True)
class Rating:
    """A parsed answer: ``value`` on 0-10, or None with the reason it is unusable (a drop-reason name)."""

    value: float | None
    reason: str | None = None


def parse_rating(answer: str | None) -> Rating:
    """The rating in an oracle answer; the last ``Rating: [[X]]`` wins (explanations may quote the format).

    Unusable answers are never guessed: they come back with a reason and stay unlabelled.

    >>> parse_rating("Clean and modular. Rating: [[7]]")
    Rating(value=7.0, reason=None)
    >>> parse_rating("I think it is good.").reason
    'unparseable_answer'
    >>> parse_rating("Rating: [[12]]").reason
    'rating_out_of_range'
    """
    if not answer or not answer.strip():
        return Rating(None, "empty_answer")
    found = _RATING.findall(answer)
    if not found:
        return Rating(None, "unparseable_answer")
    value = float(found[-1])
    if not 0.0 <= value <= 10.0:
        return Rating(None, "rating_out_of_range")
    return Rating(value)
