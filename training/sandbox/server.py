"""The sandbox as an HTTP service (FastAPI), SandboxFusion-compatible.

- ``POST /run_code``: SandboxFusion's request and response (verl's ``sandbox_fusion`` reward client and other
  SandboxFusion users work against it unchanged); ``fetch_files`` is refused with a SandboxError.
- ``POST /run_tests``: ours; a program, its language, :class:`~training.sandbox.models.Tests` and optional
  :class:`~training.sandbox.config.Limits` -> :class:`~training.sandbox.models.RunResult` with the verdict.
- ``GET /health``: the isolation mode and the pool's size and count of judged programs.

One :class:`~training.sandbox.pool.SandboxPool` serves every request, so at most ``workers`` programs run at once;
further requests wait for a slot.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from pydantic import BaseModel

from training.sandbox.config import Limits, SandboxConfig
from training.sandbox.models import RunCodeRequest, RunCodeResponse, RunResult, Tests
from training.sandbox.pool import SandboxPool


class RunTestsRequest(BaseModel):
    code: str
    language: str = "python"
    tests: Tests | None = None
    limits: Limits | None = None
    stdin: str | None = None
    files: dict[str, str | None] = {}


def create_app(cfg: SandboxConfig | None = None, *, workers: int | None = None):
    from fastapi import FastAPI

    pool = SandboxPool(cfg, workers=workers)

    @asynccontextmanager
    async def lifespan(_app):
        await pool.start()  # fail closed: the service does not come up without its isolation
        yield
        await pool.close()

    app = FastAPI(title="seedcoder sandbox", lifespan=lifespan,
                  description="Runs untrusted code in namespaces with rlimits; SandboxFusion-compatible /run_code.")

    @app.post("/run_code", response_model=RunCodeResponse)
    async def run_code(request: RunCodeRequest) -> RunCodeResponse:
        return await pool.run_code(request)

    @app.post("/run_tests", response_model=RunResult)
    async def run_tests(request: RunTestsRequest) -> RunResult:
        return await pool.run(request.code, request.language, request.tests, request.limits, stdin=request.stdin,
                              files=request.files)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "isolation": "degraded" if pool.isolation.degraded else "full",
                "workers": pool.workers, "judged": pool.completed}

    app.state.pool = pool
    return app
