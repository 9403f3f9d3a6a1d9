"""The client side of the warm local Spark driver (spark_jobs/warm_driver.py): the protocol both sides share.

The local stage operator (plugins/stage_launcher.py) and the main command (scripts/pipeline.py) talk to the driver
through these two functions. They live here, with the other contracts both sides share, because the Airflow image
carries lake/ but not the stage packages (the operator's module must import there, even though only the local
profile ever starts a driver).

Protocol (a Unix socket, one connection per request): the client sends one JSON line,
``{"op": "run", "module": "spark_jobs.exact_dedup", "argv": ["--snapshot", "demo"]}`` (or ``{"op": "ping"}``,
``{"op": "stop"}``); the driver answers with JSON lines ``{"out": "<log line>"}`` and a last ``{"exit": <code>}``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

ENV = "SEEDCODER_WARM_SPARK"  # the operator's pointer to a running driver's socket
EXIT_CLIENT_GONE = 75  # the driver's exit status when its client vanished mid-stage


def request(socket_path: str | Path, message: dict, *, timeout: float | None = None) -> Iterator[dict]:
    """Send one request and yield the driver's answers; raises ``OSError`` when no driver listens there and
    ``ConnectionError`` when the driver goes away before its last answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        sock.sendall((json.dumps(message) + "\n").encode())
        for line in sock.makefile("r", encoding="utf-8", errors="replace"):
            answer = json.loads(line)
            yield answer
            if "exit" in answer:
                return
    raise ConnectionError(f"the warm Spark driver on {socket_path} went away before answering")


def ping(socket_path: str | Path, timeout: float = 5.0) -> dict | None:
    """The driver's ping answer, or None when none answers on ``socket_path``."""
    try:
        return next(iter(request(socket_path, {"op": "ping"}, timeout=timeout)), None)
    except (OSError, ConnectionError, ValueError):
        return None
