"""Is the machine quiet enough to measure on? Every benchmark asks before it starts and records the answer.

Ratios taken while other jobs share the cores have been wrong here by 2x (the engine that yields the CPU less wins),
so a benchmark refuses to start while the 1-minute load average is above ``--max-load`` (default: a quarter of the
cores), waits up to ``--wait-quiet`` seconds for it to fall, and records the load average before and after the run
next to its numbers. ``--allow-busy`` measures at once, whatever the load (no wait: the tests' tiny runs use it), and
labels the result as taken under load when it was.

    from benchmarks.quiet import add_quiet_arguments, MachineGuard
    guard = MachineGuard.from_args(args)     # exits with a clear message if the machine is busy
    ...                                       # measure
    print(guard.report())                     # date, machine, load before/after, "quiet" or "UNDER LOAD"
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

BUSY_EXIT = 3


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the machine's architecture where there is none)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def default_max_load(cores: int | None = None) -> float:
    """A quarter of the cores: a quiet 2-core machine idles near 0.1-0.3.

    >>> default_max_load(2), default_max_load(16)
    (0.5, 4.0)
    """
    return (cores or os.cpu_count() or 1) / 4


def add_quiet_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("quiet machine")
    group.add_argument("--max-load", type=float, default=default_max_load(),
                       help="refuse to start while the 1-minute load average is above this")
    group.add_argument("--wait-quiet", type=float, default=180.0,
                       help="seconds to wait for the load average to fall below --max-load before refusing")
    group.add_argument("--allow-busy", action="store_true",
                       help="measure now without waiting, even on a busy machine; a result taken under load is "
                            "labelled UNDER LOAD")


@dataclass
class MachineGuard:
    max_load: float
    allow_busy: bool
    load_before: tuple[float, float, float]
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> MachineGuard:
        return cls.check(max_load=args.max_load, wait_s=args.wait_quiet, allow_busy=args.allow_busy)

    @classmethod
    def check(cls, *, max_load: float | None = None, wait_s: float = 180.0, allow_busy: bool = False,
              poll_s: float = 5.0) -> MachineGuard:
        """Wait up to ``wait_s`` for a quiet machine; exit with ``BUSY_EXIT`` if it stays busy. ``allow_busy``
        does not wait: it measures now and the report says whether the machine was quiet."""
        limit = default_max_load() if max_load is None else max_load
        deadline = time.monotonic() + (0.0 if allow_busy else wait_s)
        load = os.getloadavg()
        while load[0] > limit and time.monotonic() < deadline:
            print(f"quiet: load average {load[0]:.2f} > {limit:.2f}, waiting for the machine to quiet down...",
                  file=sys.stderr, flush=True)
            time.sleep(poll_s)
            load = os.getloadavg()
        if load[0] > limit:
            message = (f"the machine is busy: 1-minute load average {load[0]:.2f} (5-minute {load[1]:.2f}) is above "
                       f"{limit:.2f} on {os.cpu_count()} cores. Stop the other jobs, or pass --allow-busy to measure "
                       "anyway (the result is then labelled UNDER LOAD and is not comparable).")
            if not allow_busy:
                print(f"quiet: refusing to measure: {message}", file=sys.stderr)
                raise SystemExit(BUSY_EXIT)
            print(f"quiet: WARNING, measuring UNDER LOAD: {message}", file=sys.stderr, flush=True)
        return cls(max_load=limit, allow_busy=allow_busy, load_before=load)

    @property
    def quiet_before(self) -> bool:
        return self.load_before[0] <= self.max_load

    def summary(self) -> dict:
        """What to store next to the numbers: when, where, and how loaded the machine was before and after."""
        after = os.getloadavg()
        return {"started": self.started, "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.machine()}",
                "python": platform.python_version(),
                "load_before": [round(x, 2) for x in self.load_before], "load_after": [round(x, 2) for x in after],
                "max_load": self.max_load, "quiet": self.quiet_before}

    def report(self) -> str:
        """One line for a results table: date, machine, load before -> after, and the verdict."""
        s = self.summary()
        verdict = "quiet machine" if s["quiet"] else "UNDER LOAD (not comparable)"
        return (f"# {s['started'][:10]}, {s['machine']}, load average {s['load_before'][0]:.2f} before, "
                f"{s['load_after'][0]:.2f} after (1-min; the benchmark's own work raises the second): {verdict}")
