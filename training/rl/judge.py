"""Sandbox judging of the responses' code: a local pool (local profile) or the sandbox service (k8s pods).

With ``all_pass`` only, one sandbox run per program holds all of its task's tests; ``pass_fraction`` judges each
test alone (one run per test). Identical programs for the same task are judged once per call: a policy that
has converged writes the same answer many times, and the verdict of a program is a function of the program.
A format error (no extractable code) is not run at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from training.rl.tasks import RLTask
from training.sandbox import Limits, SandboxConfig, SandboxPool
from training.sandbox.client import SandboxClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    passed: bool
    pass_fraction: float
    # The verdict of the whole program (the first failing test's when judged per test); format_error when the
    # response had no extractable code.
    verdict: str


class SandboxFailure(RuntimeError):
    """The sandbox could not judge programs (isolation or service failure)."""


FORMAT_ERROR = Outcome(passed=False, pass_fraction=0.0, verdict="format_error")


class Judge:
    def __init__(self, sandbox: SandboxConfig, limits: Limits, *, per_test: bool, url: str | None = None,
                 concurrency: int = 64):
        self.sandbox, self.limits, self.per_test = sandbox, limits, per_test
        self.url, self.concurrency = url, concurrency
        self.runs = 0
        self.seconds = 0.0
        self.verdicts: Counter = Counter()

    def __call__(self, items: Sequence[tuple[RLTask, str | None]]) -> list[Outcome]:
        """One outcome per (task, code); code None is a format error."""
        keys: dict[tuple[str, str, int | None], int] = {}
        requests: list[dict] = []
        for task, code in items:
            if code is None:
                continue
            for index in (range(len(task.tests)) if self.per_test else (None,)):
                key = (task.task_id, code, index)
                if key not in keys:
                    keys[key] = len(requests)
                    requests.append({"code": code, "language": task.language, "tests": task.sandbox_tests(index),
                                     "limits": self.limits})
        t0 = time.monotonic()
        results = asyncio.run(self._run(requests)) if requests else []
        self.seconds += time.monotonic() - t0
        self.runs += len(requests)
        failed = [r for r in results if str(r.verdict) == "sandbox_error"]
        if failed:
            # Not the program's fault: a reward of 0 would teach the policy something false. Fail the step; the
            # round resumes from its last checkpoint once the sandbox is back.
            raise SandboxFailure(f"{len(failed)} of {len(results)} sandbox runs failed without judging the program "
                                 f"(first: {failed[0].message or failed[0].detail})")
        out = []
        for task, code in items:
            if code is None:
                out.append(FORMAT_ERROR)
                continue
            indices = range(len(task.tests)) if self.per_test else (None,)
            verdicts = [results[keys[(task.task_id, code, i)]] for i in indices]
            passed = sum(r.passed for r in verdicts)
            first_bad = next((r for r in verdicts if not r.passed), None)
            out.append(Outcome(passed=passed == len(verdicts), pass_fraction=passed / len(verdicts),
                               verdict="passed" if first_bad is None else str(first_bad.verdict)))
        self.verdicts.update(o.verdict for o in out)
        return out

    async def _run(self, requests: list[dict]):
        if self.url:
            return await SandboxClient(self.url, concurrency=self.concurrency).run_many(requests)
        async with SandboxPool(self.sandbox) as pool:
            return await pool.run_many(requests)
