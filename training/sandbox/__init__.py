"""The code-execution sandbox: run untrusted (model-written) programs and judge them, for evaluation and RL.

Python API (stable; the RL stage builds on it)::

    from training.sandbox import Limits, SandboxPool, Tests, run

    result = run("def add(a, b):\\n    return a + b", "python", Tests(code="assert add(1, 2) == 3"))
    result.passed, result.verdict, result.timings          # True, Verdict.passed, per-step seconds

    async with SandboxPool(workers=8) as pool:            # bounded async pool: RL scores thousands per step
        results = await pool.run_many([{"code": c, "language": "python", "tests": t} for c, t in samples])

HTTP (SandboxFusion-compatible ``POST /run_code``, so verl's sandbox client works against it)::

    python -m training.sandbox serve --port 8080

Languages: python, cpp, java, nodejs (js), go. Tests: Python ``asserts`` (HumanEval / MBPP style, judged by a
harness the program cannot forge) and ``stdio`` cases (any language, compared on the host). Isolation, limits
and verdicts: isolation.py, languages.py, runner.py, harness/python_harness.py.
"""

from training.sandbox.config import Limits, SandboxConfig
from training.sandbox.isolation import SandboxUnavailable
from training.sandbox.models import (
    CommandRunResult,
    CommandRunStatus,
    IOCase,
    RunCodeRequest,
    RunCodeResponse,
    RunResult,
    RunStatus,
    Tests,
    Verdict,
)
from training.sandbox.pool import SandboxPool, run

__all__ = ["CommandRunResult", "CommandRunStatus", "IOCase", "Limits", "RunCodeRequest", "RunCodeResponse",
           "RunResult", "RunStatus", "SandboxConfig", "SandboxPool", "SandboxUnavailable", "Tests", "Verdict", "run"]
