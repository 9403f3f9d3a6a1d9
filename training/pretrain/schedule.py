"""The learning-rate and phase schedule: linear warmup, then the report's constant-LR phases.

A phase given in tokens becomes ``ceil(tokens / (global batch x seq_len))`` optimizer steps, so the schedule
follows the token counts of the report whatever the batch size. ``token_budget`` shrinks every phase in
proportion (the local demo trains the same shape of schedule on a few hundred thousand tokens).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from training.pretrain.config import PhaseConfig


@dataclass(frozen=True)
class ResolvedPhase:
    name: str
    start_step: int
    steps: int
    lr: float
    seq_len: int
    mixture: dict[str, float]
    fim_rate: float | None

    @property
    def end_step(self) -> int:
        return self.start_step + self.steps


class Schedule:
    """Which phase a step belongs to and its learning rate.

    >>> from training.pretrain.config import PhaseConfig
    >>> s = Schedule.resolve([PhaseConfig(name="a", steps=10, lr=1e-3), PhaseConfig(name="b", steps=5, lr=1e-4)],
    ...                      warmup_steps=4, global_batch=8, seq_lens={"a": 16, "b": 16})
    >>> [round(s.lr_at(i), 5) for i in (0, 3, 4, 9, 10, 14)]
    [0.00025, 0.001, 0.001, 0.001, 0.0001, 0.0001]
    >>> s.total_steps, s.phase_at(12).name
    (15, 'b')
    """

    def __init__(self, phases: list[ResolvedPhase], warmup_steps: int):
        self.phases = phases
        self.warmup_steps = warmup_steps
        self._starts = [p.start_step for p in phases]

    @classmethod
    def resolve(cls, phases: list[PhaseConfig], *, warmup_steps: int, global_batch: int,
                seq_lens: dict[str, int], token_budget: int | None = None) -> Schedule:
        """Steps per phase from its tokens (scaled to ``token_budget``) or its given steps."""
        scale = 1.0
        if token_budget is not None:
            scale = token_budget / sum(p.tokens for p in phases)
        out, start = [], 0
        for phase in phases:
            seq_len = seq_lens[phase.name]
            if phase.steps is not None:
                steps = phase.steps
            else:
                steps = max(1, math.ceil(phase.tokens * scale / (global_batch * seq_len)))
            total = sum(phase.mixture.values())
            mixture = {k: v / total for k, v in sorted(phase.mixture.items()) if v > 0}
            out.append(ResolvedPhase(phase.name, start, steps, phase.lr, seq_len, mixture, phase.fim_rate))
            start += steps
        return cls(out, warmup_steps)

    @property
    def total_steps(self) -> int:
        return self.phases[-1].end_step

    def phase_at(self, step: int) -> ResolvedPhase:
        if not 0 <= step < self.total_steps:
            raise IndexError(f"step {step} is outside the schedule (0..{self.total_steps - 1})")
        return self.phases[bisect.bisect_right(self._starts, step) - 1]

    def lr_at(self, step: int) -> float:
        """The phase's learning rate, ramped linearly over the first ``warmup_steps`` steps (step 0 > 0)."""
        lr = self.phase_at(step).lr
        if step < self.warmup_steps:
            return lr * (step + 1) / self.warmup_steps
        return lr

    def describe(self) -> list[dict]:
        return [{"phase": p.name, "steps": p.steps, "start_step": p.start_step, "lr": p.lr, "seq_len": p.seq_len,
                 "mixture": p.mixture, "fim_rate": p.fim_rate} for p in self.phases]
