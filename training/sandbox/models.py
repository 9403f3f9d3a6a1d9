"""Requests and results of the sandbox, in SandboxFusion's shapes where it has one.

``RunCodeRequest`` / ``RunCodeResponse`` / ``CommandRunResult`` mirror SandboxFusion's ``POST /run_code``
(bytedance/SandboxFusion, ``sandbox/server/sandbox_api.py`` and ``sandbox/runners/types.py``): the same field
names, the same status strings (``Success`` / ``Failed`` / ``SandboxError``; ``Finished`` / ``Error`` /
``TimeLimitExceeded``), so reward code written for verl's SandboxFusion client reads our responses unchanged.

``Tests`` and :class:`Verdict` are ours: what "passes" means, decided by the host, never by an exit code alone.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from training.sandbox.config import Limits

# Languages we run, with SandboxFusion's names (``nodejs``; ``js`` and ``javascript`` are accepted aliases).
Language = Literal["python", "cpp", "java", "nodejs", "go"]
LANGUAGE_ALIASES = {"python3": "python", "py": "python", "c++": "cpp", "js": "nodejs", "javascript": "nodejs",
                    "node": "nodejs", "golang": "go"}


def canonical_language(name: str) -> str:
    """SandboxFusion's name of a language.

    >>> canonical_language("js"), canonical_language("python")
    ('nodejs', 'python')
    """
    return LANGUAGE_ALIASES.get(name, name)


class CommandRunStatus(StrEnum):
    Finished = "Finished"
    Error = "Error"
    TimeLimitExceeded = "TimeLimitExceeded"


class RunStatus(StrEnum):
    # Every step finished with exit code 0.
    Success = "Success"
    # A step exceeded its time or exited non-zero (or did not compile).
    Failed = "Failed"
    # The sandbox could not run the request (isolation failure, bad request): not the program's fault.
    SandboxError = "SandboxError"


class CommandRunResult(BaseModel):
    """One step (compile or run), as SandboxFusion reports it."""

    status: CommandRunStatus
    execution_time: float | None = None
    return_code: int | None = None
    stdout: str | None = None
    stderr: str | None = None


class RunCodeRequest(BaseModel):
    """SandboxFusion's ``POST /run_code`` body."""

    compile_timeout: float = Field(10, gt=0, le=600, description="compile timeout for compiled languages")
    run_timeout: float = Field(10, gt=0, le=600, description="code run timeout")
    memory_limit_MB: int = Field(-1, ge=-1, le=65536, description="maximum memory allowed in megabytes")
    code: str = Field(..., description="the code to run")
    stdin: str | None = Field(None, description="optional string to pass into stdin")
    language: str = Field(..., description="python, cpp, java, nodejs (js), go")
    files: dict[str, str | None] = Field({}, description="a dict from file path to base64 encoded file content")
    fetch_files: list[str] = Field([], description="not supported: the sandbox's files are gone after the run")


class RunCodeResponse(BaseModel):
    status: RunStatus
    message: str
    compile_result: CommandRunResult | None = None
    run_result: CommandRunResult | None = None
    executor_pod_name: str | None = None
    files: dict[str, str] = {}


class IOCase(BaseModel):
    """One stdin -> expected stdout pair (competitive-programming style)."""

    stdin: str = ""
    stdout: str


class Tests(BaseModel):
    """How to judge a program.

    - ``asserts``: ``code`` is test code run after the program. Python: statements (``assert f(1) == 2``, or
      HumanEval's ``def check(candidate)``, then called with ``entry_point``), run in a namespace of their own
      by the harness. C++ / Java / JavaScript / Go: the program and ``code`` together form one program whose
      ``main`` runs the tests (MultiPL-E's layout); it passes when that ``main`` returns normally.
    - ``stdio``: each case runs the program on its ``stdin``; it passes when every run exits 0 and prints the
      expected ``stdout`` (compared line by line, trailing whitespace ignored).
    """

    __test__: ClassVar[bool] = False  # not a pytest test class, whatever its name
    kind: Literal["asserts", "stdio"] = "asserts"
    code: str = ""
    entry_point: str | None = None
    cases: list[IOCase] = []


class Verdict(StrEnum):
    """Why a judged program passed or not; each value is also a metric name."""

    passed = "passed"
    # A test assertion failed, or a stdio case printed the wrong output.
    wrong_answer = "wrong_answer"
    # An exception, a non-zero exit, or a signal before the tests finished.
    runtime_error = "runtime_error"
    timeout = "timeout"
    memory_limit = "memory_limit"
    output_limit = "output_limit"
    compile_error = "compile_error"
    compile_timeout = "compile_timeout"
    # The program exited (even with 0) without the harness reporting that the tests ran to the end.
    no_verdict = "no_verdict"
    # Something other than the harness wrote to the verdict channel.
    tampered = "tampered"
    sandbox_error = "sandbox_error"


class Timings(BaseModel):
    """Seconds spent on one request: waiting for a slot, compiling, running, in all."""

    queue: float = 0.0
    compile: float = 0.0
    run: float = 0.0
    total: float = 0.0


class RunResult(BaseModel):
    """The result of :func:`training.sandbox.run`: SandboxFusion's response plus the judged verdict."""

    status: RunStatus
    message: str = ""
    compile_result: CommandRunResult | None = None
    run_result: CommandRunResult | None = None
    # None when no tests were given (plain run_code).
    verdict: Verdict | None = None
    # The harness's or the comparison's explanation (failed assertion, first differing line).
    detail: str = ""
    # stdio: one result per case, in order (stops at the first failing case).
    cases: list[CommandRunResult] = []
    timings: Timings = Timings()
    # "full" (namespaces, uid, rlimits) or "degraded" (allow_degraded: no namespaces).
    isolation: str = "full"

    @property
    def passed(self) -> bool:
        return self.verdict == Verdict.passed

    def to_run_code_response(self, pod_name: str | None = None) -> RunCodeResponse:
        return RunCodeResponse(status=self.status, message=self.message, compile_result=self.compile_result,
                               run_result=self.run_result, executor_pod_name=pod_name)


__all__ = ["CommandRunResult", "CommandRunStatus", "IOCase", "Language", "Limits", "RunCodeRequest",
           "RunCodeResponse", "RunResult", "RunStatus", "Tests", "Timings", "Verdict", "canonical_language"]
