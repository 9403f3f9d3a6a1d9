"""Stopping the servers tests start: each in a process group of its own (``start_new_session=True``)."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process_groups(*procs: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM every process's group, then wait for each leader; a group still there after ``grace_s`` gets
    SIGKILL. A group is signalled even when its leader has exited (its children may not have); one that is gone
    already is skipped."""

    def signal_group(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    for proc in procs:
        signal_group(proc, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
            proc.wait()
