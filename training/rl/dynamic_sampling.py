"""DAPO's dynamic sampling and the report's format rule: which groups of a generation batch train.

A group (the ``n`` responses to one prompt) whose rewards are all equal has zero advantage everywhere: it costs a
forward and backward pass and teaches nothing. With ``filter_groups.enable`` such groups are dropped and more
batches are generated until ``train_batch_size`` groups are kept; ``max_num_gen_batches`` bounds the generation
(a task set the policy always or never solves would otherwise loop for ever) and ends the step with a clear error.

The report also drops groups that are "all correct except for format errors": every response either passed or
could not be read (no response was a readable wrong answer). Their only signal would be about formatting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class DynamicSamplingExhausted(RuntimeError):
    """The step generated ``max_num_gen_batches`` batches without filling its batch with informative groups."""


@dataclass
class Group:
    """The responses to one prompt with what dynamic sampling looks at; ``payload`` carries the rest."""

    rewards: list[float]
    passed: list[bool]
    format_ok: list[bool]
    payload: Any = None


def has_spread(values: Sequence[float]) -> bool:
    """Whether a group's values differ (a one-response group always counts as informative, as in verl).

    >>> has_spread([1.0, 0.0]), has_spread([0.5, 0.5, 0.5]), has_spread([1.0])
    (True, False, True)
    """
    return len(values) == 1 or float(np.std(np.asarray(values, dtype=np.float64))) > 0.0


def all_correct_but_format(passed: Sequence[bool], format_ok: Sequence[bool]) -> bool:
    """The report's rule: every response passed or was a format error, and there was at least one format error.

    >>> all_correct_but_format([True, False, True], [True, False, True])    # one unreadable, the rest correct
    True
    >>> all_correct_but_format([True, False, True], [True, True, True])     # a readable wrong answer: keep
    False
    >>> all_correct_but_format([True, True], [True, True])                  # no format error
    False
    """
    return any(not ok for ok in format_ok) and all(p or not ok for p, ok in zip(passed, format_ok, strict=True))


def drop_reason(group: Group, *, filter_groups: bool, metric: str, drop_format_errors: bool) -> str | None:
    """Why a group does not train (a metric name), or None when it does.

    >>> g = Group(rewards=[1.0, 1.0], passed=[True, True], format_ok=[True, True])
    >>> drop_reason(g, filter_groups=True, metric="seq_reward", drop_format_errors=True)
    'zero_reward_spread'
    >>> drop_reason(g, filter_groups=False, metric="seq_reward", drop_format_errors=True) is None
    True
    """
    if drop_format_errors and all_correct_but_format(group.passed, group.format_ok):
        return "all_correct_but_format"
    if filter_groups:
        values = group.rewards if metric == "seq_reward" else [float(p) for p in group.passed]
        if not has_spread(values):
            return "zero_reward_spread" if metric == "seq_reward" else "zero_accuracy_spread"
    return None


@dataclass
class BatchFiller:
    """Collects kept groups over generation batches until ``target`` are kept.

    >>> filler = BatchFiller(target=2, max_num_gen_batches=2)
    >>> same = Group(rewards=[0.0, 0.0], passed=[False, False], format_ok=[True, True])
    >>> mixed = Group(rewards=[1.0, 0.0], passed=[True, False], format_ok=[True, True])
    >>> filler.add([same, mixed]); filler.full
    False
    >>> filler.add([mixed, same]); filler.full, len(filler.batch()), filler.drops
    (True, 2, Counter({'zero_reward_spread': 2}))
    """

    target: int
    max_num_gen_batches: int = 10
    filter_groups: bool = True
    metric: str = "seq_reward"
    drop_format_errors: bool = True
    kept: list[Group] = field(default_factory=list)
    drops: Counter = field(default_factory=Counter)
    generated_groups: int = 0
    gen_batches: int = 0

    @property
    def full(self) -> bool:
        return len(self.kept) >= self.target

    def check_budget(self) -> None:
        """Call before generating a batch: raises once ``max_num_gen_batches`` batches were not enough."""
        if self.max_num_gen_batches and self.gen_batches >= self.max_num_gen_batches:
            raise DynamicSamplingExhausted(
                f"dynamic sampling made {self.gen_batches} generation batches (filter_groups.max_num_gen_batches) "
                f"and kept {len(self.kept)} of the {self.target} groups a step needs; dropped "
                f"{dict(self.drops)} of {self.generated_groups}. The policy solves these tasks always or never: "
                f"run the curriculum on them, raise max_num_gen_batches, or set it to 0 for no bound")

    def add(self, groups: Sequence[Group]) -> None:
        self.gen_batches += 1
        self.generated_groups += len(groups)
        for group in groups:
            reason = drop_reason(group, filter_groups=self.filter_groups, metric=self.metric,
                                 drop_format_errors=self.drop_format_errors)
            if reason is None:
                self.kept.append(group)
            else:
                self.drops[reason] += 1

    def batch(self) -> list[Group]:
        """The first ``target`` kept groups (the surplus of the last batch is not trained on, as in verl)."""
        if not self.full:
            raise RuntimeError(f"the batch holds {len(self.kept)} of {self.target} groups")
        return self.kept[: self.target]

    @property
    def dropped_share(self) -> float:
        return sum(self.drops.values()) / self.generated_groups if self.generated_groups else 0.0
