"""Helpers of the sandbox tests: run programs through a real pool, and look for anything they left behind."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from training.sandbox import Limits, SandboxConfig, SandboxPool, Tests
from training.sandbox.isolation import processes_of, scratch_root
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
    """Pids of any process running as a sandbox uid that no pool holds (there must be none after a run).

    A uid held by a live pool of another process (a stage or benchmark running beside the tests) is that pool's
    business; the pools of a test are closed when it checks, so their uids are free and checked."""
    import fcntl

    locks = scratch_root(cfg) / "locks"
    free = set()
    for uid in range(cfg.uid_base, cfg.uid_base + UID_RANGE):
        path = locks / f"uid-{uid}.lock"
        if not path.exists():
            free.add(uid)
            continue
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            free.add(uid)
        except BlockingIOError:
            pass
        finally:
            os.close(fd)
    pids = processes_of(range(cfg.uid_base, cfg.uid_base + UID_RANGE))
    return [pid for pid in pids if _uid_of(pid) in free]


def _uid_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
