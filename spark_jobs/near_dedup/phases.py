"""Progress of a near-dedup run: each phase logged when it starts and with its wall time when it ends."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

DONE = "near dedup: %s done in %.1f s"  # benchmarks/near_dedup_peers.py reads the phase times from these records


@contextmanager
def phase(log: logging.Logger, name: str):
    """Log when a phase starts and how long it took: the job's progress report."""
    log.info("near dedup: %s ...", name)
    t0 = time.monotonic()
    yield
    log.info(DONE, name, time.monotonic() - t0)
