"""The curriculum between RL rounds: which tasks the next round trains on, from their pass rates under the policy.

The report drops problems the policy solves more than 87.5% of the time (no signal left, and GRPO's normalised
advantage would amplify the rare failure); tasks it never solves give groups without reward spread, which
dynamic sampling would drop one by one at the price of their generation. The rest is ordered by difficulty.
This module is the pure selection; the curriculum step (training/rl/stage.py) estimates the pass rates and writes
the set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    task_index: int
    pass_rate: float
    # None: kept; else why it was dropped (a metric name).
    dropped: str | None


def select(pass_rates: Sequence[float], *, max_pass_rate: float = 0.875, drop_unsolved: bool = True,
           order: str = "easiest_first") -> tuple[list[int], list[Decision]]:
    """The kept task indices in training order, and a decision per task.

    Ties keep the task set's own order, so the selection is deterministic.

    >>> kept, decisions = select([0.0, 0.5, 1.0, 0.25, 0.9, 0.875])
    >>> kept
    [5, 1, 3]
    >>> [d.dropped for d in decisions]
    ['never_solved', None, 'too_easy', None, 'too_easy', None]
    >>> select([0.5, 0.25, 0.75], order="hardest_first")[0]
    [1, 0, 2]
    """
    if order not in ("easiest_first", "hardest_first"):
        raise ValueError(f"unknown curriculum order {order!r}: use easiest_first or hardest_first")
    decisions = []
    for i, rate in enumerate(pass_rates):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"task {i}: pass rate {rate} is outside [0, 1]")
        reason = "too_easy" if rate > max_pass_rate else "never_solved" if drop_unsolved and rate == 0.0 else None
        decisions.append(Decision(i, float(rate), reason))
    kept = [d for d in decisions if d.dropped is None]
    sign = -1.0 if order == "easiest_first" else 1.0
    kept.sort(key=lambda d: (sign * d.pass_rate, d.task_index))
    return [d.task_index for d in kept], decisions
