"""The answer's code, read out of a response: what the sandbox runs and what the format reward checks.

Two answer formats (``stages.rl.reward.answer_format``):

- ``plain``: the response is the code itself, as a base model completing the evaluation's docstring prompt
  writes it (and as the evaluation stage judges it). Extractable when it is not empty and, for Python, parses.
- ``fenced``: the code is the last fenced block (```python ... ```) of the response, after any reasoning, as
  reasoning models answer. Extractable when such a block is closed and, for Python, its content parses.

A response with nothing extractable is a *format error*: it is not run, scores the format penalty, and counts
for the report's rule that drops groups which are all correct except for format errors.
"""

from __future__ import annotations

import ast
import re
import warnings
from typing import Literal

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+#-]*)[ \t]*\n(.*?)```", re.S)


def parses(code: str, language: str = "python") -> bool:
    """Whether ``code`` is syntactically valid (only Python is checked here; compilers judge the others).

    >>> parses("def f(x):\\n    return x\\n"), parses("def f(x) return x")
    (True, False)
    >>> parses("int main() {", "cpp")
    True
    """
    if language != "python":
        return True
    try:
        with warnings.catch_warnings():  # invalid escapes in strings warn, and still run
            warnings.simplefilter("ignore")
            ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def extract_code(response: str, answer_format: Literal["plain", "fenced"] = "plain",
                 language: str = "python") -> str | None:
    """The code of ``response``, or None when nothing can be extracted (a format error).

    >>> extract_code("def add(a, b):\\n    return a + b\\n")
    'def add(a, b):\\n    return a + b\\n'
    >>> extract_code("   \\n") is None, extract_code("def f(:\\n") is None
    (True, True)
    >>> extract_code("Add them.\\n```python\\ndef add(a, b):\\n    return a + b\\n```\\n", "fenced")
    'def add(a, b):\\n    return a + b\\n'
    >>> extract_code("```python\\ndef add(a, b):\\n", "fenced") is None   # never closed: cut off
    True
    >>> extract_code("```\\nx = 1\\n```\\nthen\\n```py\\nx = 2\\n```", "fenced")   # the last block is the answer
    'x = 2\\n'
    """
    if answer_format == "fenced":
        blocks = _FENCE.findall(response)
        if not blocks:
            return None
        code = blocks[-1][1]
    elif answer_format == "plain":
        code = response
    else:
        raise ValueError(f"unknown answer format {answer_format!r}: use plain or fenced")
    if not code.strip() or not parses(code, language):
        return None
    return code


def format_reference(code: str, answer_format: Literal["plain", "fenced"] = "plain", language: str = "python") -> str:
    """A reference solution written the way the policy should answer (the warm-up's target).

    >>> format_reference("def f():\\n    return 1")
    'def f():\\n    return 1\\n'
    >>> format_reference("def f():\\n    return 1", "fenced")
    '```python\\ndef f():\\n    return 1\\n```\\n'
    """
    code = code.rstrip() + "\n"
    if answer_format == "fenced":
        return f"```{language}\n{code}```\n"
    return code
