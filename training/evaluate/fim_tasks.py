"""Infilling tasks derived from HumanEval's canonical solutions, in the spirit of SantaCoder's HumanEval
single-line and multi-line infilling (no such set ships offline, so they are cut here, deterministically).

For each problem the full program is ``prompt + canonical solution``. A *single-line* task masks one non-blank
line of the solution; a *multi-line* task masks a span of 2 to ``max_span_lines`` consecutive lines starting at
a non-blank one. Which line or span is chosen depends only on (seed, task id, kind). The model sees the rest in
the SPM layout it was trained on (``<[fim-suffix]>SUFFIX<[fim-prefix]>PREFIX<[fim-middle]>``), writes the middle,
and is scored by exact match (training/evaluate/completions.py) and by running HumanEval's tests on the filled
program.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from lake.evalsets import CodeTask


@dataclass(frozen=True)
class FimTask:
    kind: str
    task_id: str
    prefix: str
    middle: str
    suffix: str
    source: CodeTask


def _rng(seed: int, task_id: str, kind: str) -> random.Random:
    return random.Random(f"{seed}:{task_id}:{kind}")


def fim_task(task: CodeTask, kind: str, *, seed: int = 0, max_span_lines: int = 6) -> FimTask | None:
    """The ``kind`` infilling task of one problem; None when its solution is too short for that kind.

    >>> from lake.evalsets import humaneval
    >>> t = fim_task(humaneval()[2], "single_line")
    >>> t.middle, t.prefix == humaneval()[2].prompt, t.suffix
    ('    return number % 1.0\\n', True, '')
    >>> fim_task(humaneval()[2], "multi_line") is None      # a one-line solution has no span of two lines
    True
    """
    lines = task.canonical.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip()]
    if kind == "single_line":
        if not starts:
            return None
        i = _rng(seed, task.task_id, kind).choice(starts)
        j = i + 1
    elif kind == "multi_line":
        starts = [i for i in starts if i + 2 <= len(lines)]
        if not starts:
            return None
        rng = _rng(seed, task.task_id, kind)
        i = rng.choice(starts)
        j = i + rng.randint(2, max(2, min(max_span_lines, len(lines) - i)))
    else:
        raise ValueError(f"unknown FIM task kind {kind!r}: use single_line or multi_line")
    return FimTask(kind, task.task_id, task.prompt + "".join(lines[:i]), "".join(lines[i:j]), "".join(lines[j:]),
                   task)


def fim_tasks(problems: tuple[CodeTask, ...], kind: str, *, seed: int = 0, max_span_lines: int = 6,
              max_tasks: int | None = None) -> list[FimTask]:
    out = [t for p in problems if (t := fim_task(p, kind, seed=seed, max_span_lines=max_span_lines))]
    return out[:max_tasks] if max_tasks else out
