"""Helpers of the sandbox tests: run programs through a real pool, and look for anything they left behind."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from training.sandbox import Limits, SandboxConfig, SandboxPool, Tests
from training.sandbox.isolation import processes_of
from training.sandbox.pool import UID_RANGE

CFG = SandboxConfig()

needs_isolation = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("bwrap") or not shutil.which("setpriv"),
    reason="the sandbox needs root and bubblewrap (scripts/test.sh installs it)")


def run(code: str, language: str = "python", tests: Tests | None = None, limits: Limits | None = None,
        cfg: SandboxConfig = CFG, **kw):
    async def once():
        async with SandboxPool(cfg, workers=1) as pool:
            return await pool.run(code, language, tests, limits, **kw)

    return asyncio.run(once())


def run_many(requests: list[dict], workers: int, cfg: SandboxConfig = CFG):
    async def many():
        async with SandboxPool(cfg, workers=workers) as pool:
            return await pool.run_many(requests)

    return asyncio.run(many())


def leftovers(cfg: SandboxConfig = CFG) -> list[int]:
    """Pids of any process running as one of the sandbox's uids (there must be none after a run)."""
    return processes_of(range(cfg.uid_base, cfg.uid_base + UID_RANGE))
