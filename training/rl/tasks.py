"""The RL task format: a prompt, tests the sandbox judges, and optionally a reference solution for the warm-up.

One JSON object per line (``stages.rl.tasks`` / ``--tasks`` names the file; a path or a lake URI)::

    {"task_id": "mbpp/601",                         unique, any string
     "prompt": "\"\"\"\\nWrite a function ...\\n\"\"\"\\n",   what the policy is given (tokenized as is)
     "language": "python",                          python (asserts or stdio), cpp, java, nodejs, go (stdio)
     "tests": ["assert f(1) == 2", "assert f(2) == 3"],        Python: test statements, each judged alone
                                                               for pass_fraction, all together for all_pass
     "tests": [{"stdin": "1 2\\n", "stdout": "3\\n"}, ...],     or stdio cases (CodeContests style), any language
     "setup": "import math",                        optional: test code run before every test (MBPP's test_setup_code)
     "entry_point": "f",                            optional: the function the program must define
     "reference": "def f(x):\\n    return x + 1\\n"}   optional: a solution, for the warm-up (must pass)

A CodeContests-style set (problem statement + stdin/stdout cases + a solution) maps to it directly: the statement
goes in ``prompt`` (with whatever instruction the policy was warmed up to follow), the cases in ``tests``, a
correct solution in ``reference``. Built-in sets: ``mbpp:<split>`` (the vendored MBPP, its docstring prompt as the
evaluation uses it) and ``easy:<count>`` (arithmetic functions any policy can learn: a check that the loop learns).
"""

from __future__ import annotations

import json
import operator
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from training.sandbox.models import IOCase, Tests, canonical_language

LANGUAGES = ("python", "cpp", "java", "nodejs", "go")


class TaskFormatError(ValueError):
    """A task set line that is not a task (its source and line number are in the message)."""


@dataclass(frozen=True)
class RLTask:
    task_id: str
    prompt: str
    # Python test statements, or stdio cases as {"stdin", "stdout"} dicts.
    tests: tuple
    language: str = "python"
    setup: str = ""
    entry_point: str | None = None
    reference: str | None = None

    @property
    def stdio(self) -> bool:
        return bool(self.tests) and isinstance(self.tests[0], dict)

    def sandbox_tests(self, index: int | None = None) -> Tests:
        """The sandbox's tests: all of them (``index`` None), or test ``index`` alone."""
        chosen = self.tests if index is None else (self.tests[index],)
        if self.stdio:
            return Tests(kind="stdio", cases=[IOCase(stdin=c.get("stdin", ""), stdout=c["stdout"]) for c in chosen])
        code = "\n".join(filter(None, [self.setup, *chosen])) + "\n"
        return Tests(kind="asserts", code=code, entry_point=self.entry_point)

    def to_row(self) -> dict:
        row = asdict(self)
        row["tests"] = json.dumps(list(self.tests))
        return row

    @classmethod
    def from_row(cls, row: dict) -> RLTask:
        return cls(task_id=row["task_id"], prompt=row["prompt"], tests=tuple(json.loads(row["tests"])),
                   language=row["language"], setup=row.get("setup") or "", entry_point=row.get("entry_point"),
                   reference=row.get("reference"))


def parse_task(obj: object, where: str) -> RLTask:
    """One task from a decoded JSON object, checked field by field (``where`` names the source line).

    >>> parse_task({"task_id": "t", "prompt": "p", "tests": ["assert 1"]}, "x:1").language
    'python'
    >>> parse_task({"task_id": "t", "prompt": "p", "tests": []}, "x:1")
    Traceback (most recent call last):
    ...
    training.rl.tasks.TaskFormatError: x:1: "tests" must be a non-empty list of test strings or {"stdin", "stdout"} cases
    """
    if not isinstance(obj, dict):
        raise TaskFormatError(f"{where}: a task is a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - {"task_id", "prompt", "language", "tests", "setup", "entry_point", "reference"})
    if unknown:
        raise TaskFormatError(f"{where}: unknown field(s) {unknown}")
    for key in ("task_id", "prompt"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise TaskFormatError(f"{where}: {key!r} must be a non-empty string")
    language = canonical_language(str(obj.get("language", "python")))
    if language not in LANGUAGES:
        raise TaskFormatError(f"{where}: language {obj.get('language')!r} is not one of {list(LANGUAGES)}")
    tests = obj.get("tests")
    strings = isinstance(tests, list) and tests and all(isinstance(t, str) and t.strip() for t in tests)
    cases = isinstance(tests, list) and tests and all(
        isinstance(t, dict) and isinstance(t.get("stdout"), str) and isinstance(t.get("stdin", ""), str)
        and not set(t) - {"stdin", "stdout"} for t in tests)
    if not (strings or cases):
        raise TaskFormatError(f'{where}: "tests" must be a non-empty list of test strings or {{"stdin", "stdout"}} '
                              f"cases")
    if strings and language != "python":
        raise TaskFormatError(f"{where}: {language} tasks are judged on stdio cases; assert tests are Python only")
    for key in ("setup", "entry_point", "reference"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise TaskFormatError(f"{where}: {key!r} must be a string")
    return RLTask(task_id=obj["task_id"], prompt=obj["prompt"], tests=tuple(tests), language=language,
                  setup=obj.get("setup") or "", entry_point=obj.get("entry_point") or None,
                  reference=obj.get("reference") or None)


def parse_jsonl(text: str, source: str) -> list[RLTask]:
    """Every task of a JSONL text; a bad line or a repeated task id is an error naming the line."""
    out, seen = [], {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise TaskFormatError(f"{where}: not JSON ({err.msg} at column {err.colno})") from None
        task = parse_task(obj, where)
        if task.task_id in seen:
            raise TaskFormatError(f"{where}: task id {task.task_id!r} repeats line {seen[task.task_id]}")
        seen[task.task_id] = number
        out.append(task)
    if not out:
        raise TaskFormatError(f"{source}: no tasks")
    return out


def mbpp_tasks(split: str = "train") -> list[RLTask]:
    """MBPP's tasks of one split, with the evaluation's docstring prompt, each test separately, the reference."""
    from lake.evalsets import MBPP_SPLITS, mbpp_entry_point, mbpp_prompt, mbpp_records

    if split not in MBPP_SPLITS:
        raise ValueError(f"unknown MBPP split {split!r}: use one of {sorted(MBPP_SPLITS)}")
    ids = MBPP_SPLITS[split]
    return [RLTask(task_id=f"mbpp/{r['task_id']}", prompt=mbpp_prompt(r), tests=tuple(r["test_list"]),
                   setup=r["test_setup_code"], entry_point=mbpp_entry_point(r["test_list"][0], r["code"]),
                   reference=r["code"].replace("\r\n", "\n"))
            for r in mbpp_records() if r["task_id"] in ids]


EASY_OPS = (("add", "plus", "+", operator.add), ("sub", "minus", "-", operator.sub), ("mul", "times", "*", operator.mul))


def easy_tasks(count: int = 200, seed: int = 0) -> list[RLTask]:
    """Arithmetic one-liners in MBPP's shape: ``add_3(x)`` returns ``x + 3``. Any policy can learn them, so a
    reward that does not rise on them points at the loop, not at the task set.

    >>> t = easy_tasks(3)[0]
    >>> print(t.prompt + t.reference, end="")
    \"\"\"
    Write a function add_4(x) that returns x plus 4.
    assert add_4(2) == 6
    \"\"\"
    def add_4(x):
        return x + 4
    """
    rng = random.Random(seed)
    combos = [(op, k) for op in EASY_OPS for k in range(1, 10)]
    rng.shuffle(combos)
    out = []
    for i in range(count):
        (name, word, sign, fn_op), k = combos[i % len(combos)]
        fn = f"{name}_{k}" if i < len(combos) else f"{name}_{k}_{i // len(combos)}"
        probes = [rng.randint(-20, 20) for _ in range(3)]
        tests = tuple(f"assert {fn}({x}) == {fn_op(x, k)}" for x in probes)
        prompt = f'"""\nWrite a function {fn}(x) that returns x {word} {k}.\n{tests[0]}\n"""\n'
        out.append(RLTask(task_id=f"easy/{i}", prompt=prompt, tests=tests, entry_point=fn,
                          reference=f"def {fn}(x):\n    return x {sign} {k}\n"))
    return out


def load_tasks(source: str, lake=None) -> list[RLTask]:
    """The task set ``source`` names: ``mbpp:<split>``, ``easy:<count>``, a JSONL path, or a URI in ``lake``; several,
    comma-separated, are concatenated in order (a task id may appear once).

    >>> [t.task_id for t in load_tasks("easy:2,mbpp:prompt")][:3]
    ['easy/0', 'easy/1', 'mbpp/1']
    """
    if "," in source:
        out, seen = [], {}
        for part in filter(None, (p.strip() for p in source.split(","))):
            for task in load_tasks(part, lake):
                if task.task_id in seen:
                    raise TaskFormatError(f"task set {source!r}: task id {task.task_id!r} is in both {seen[task.task_id]!r} "
                                          f"and {part!r}")
                seen[task.task_id] = part
                out.append(task)
        return out
    kind, _, arg = source.partition(":")
    if kind == "mbpp" and arg:
        return mbpp_tasks(arg)
    if kind == "easy" and arg:
        if not arg.isdigit() or int(arg) < 1:
            raise ValueError(f"tasks {source!r}: easy:<count> needs a positive count")
        return easy_tasks(int(arg))
    path = Path(source).expanduser()
    if path.is_file():
        return parse_jsonl(path.read_text(encoding="utf-8"), str(path))
    if lake is not None and source.startswith(lake.root.rstrip("/") + "/"):
        key = source[len(lake.root.rstrip("/")) + 1:]
        return parse_jsonl(lake.storage.read_bytes(key).decode("utf-8"), source)
    raise FileNotFoundError(f"task set {source!r}: not mbpp:<split>, easy:<count>, a JSONL file here, or a "
                            f"location in the lake")
