"""A client of the sandbox service (``POST /run_tests``), for pods that do not run programs themselves: on the k8s
profile the GPU pods of evaluation and RL send their programs to the sandbox Deployment, which is the only place
with the namespaces' permissions and the toolchains.

Same results as :class:`~training.sandbox.pool.SandboxPool`; ``concurrency`` bounds the requests in flight, and a
request that fails to connect or gets a 5xx (the service restarting) is retried with exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable

from training.sandbox.config import Limits
from training.sandbox.models import RunResult, RunStatus, Tests, Verdict

log = logging.getLogger(__name__)


class SandboxClient:
    def __init__(self, url: str, *, concurrency: int = 64, timeout_s: float = 600.0, retries: int = 4):
        self.url = url.rstrip("/")
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retries = retries

    async def run_many(self, requests: Iterable[dict], *, progress_every: int = 0) -> list[RunResult]:
        """Each request holds :meth:`SandboxPool.run`'s keyword arguments; results in request order."""
        import httpx

        requests = list(requests)
        gate = asyncio.Semaphore(self.concurrency)
        done = 0

        async with httpx.AsyncClient(timeout=self.timeout_s) as http:
            async def one(request: dict) -> RunResult:
                nonlocal done
                body = {"code": request["code"], "language": request.get("language", "python"),
                        "stdin": request.get("stdin"), "files": request.get("files") or {}}
                for key in ("tests", "limits"):
                    value = request.get(key)
                    if isinstance(value, Tests | Limits):
                        body[key] = value.model_dump(mode="json")
                async with gate:
                    result = await self._post(http, body, judged="tests" in body)
                done += 1
                if progress_every and (done % progress_every == 0 or done == len(requests)):
                    log.info("sandbox service: %d/%d programs judged", done, len(requests))
                return result

            return list(await asyncio.gather(*(one(r) for r in requests)))

    async def _post(self, http, body: dict, *, judged: bool) -> RunResult:
        import httpx

        for attempt in range(self.retries + 1):
            try:
                response = await http.post(f"{self.url}/run_tests", json=body)
                if response.status_code < 500:
                    response.raise_for_status()
                    return RunResult.model_validate(response.json())
                problem = f"HTTP {response.status_code}"
            except (httpx.TransportError, httpx.TimeoutException) as err:
                problem = f"{type(err).__name__}: {err}"
            if attempt < self.retries:
                await asyncio.sleep(min(30.0, 0.5 * 2 ** attempt) * (0.5 + random.random()))
        log.error("sandbox service %s failed %d times: %s", self.url, self.retries + 1, problem)
        return RunResult(status=RunStatus.SandboxError, message=f"the sandbox service failed: {problem}",
                         detail=problem, verdict=Verdict.sandbox_error if judged else None)
