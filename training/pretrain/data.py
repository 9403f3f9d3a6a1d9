"""The training mixture over the packed token shards: deterministic by seed, exactly resumable.

Each optimizer step draws its ``global batch`` rows at once: a generator seeded with ``(seed, step)`` picks the
source of every row by the phase's mixture weights, and each source hands out its rows in a seeded random
permutation (a fresh one per epoch over the source). The whole state is the step and one cursor per source,
which a checkpoint stores; resuming replays nothing and skips nothing. Every rank computes the same global
draw and materialises only its own slice, so the order of the data does not depend on the world size.

A row becomes a training example with ``position_ids`` restarting at every document start (transformers
turns the restarts into attention kept within documents) and labels of -100 where there is nothing to learn:
the first token of a document (it would be predicted from the previous document) and the padding at the
end of a shard.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from training.pretrain.config import SOURCES

log = logging.getLogger(__name__)
IGNORE = -100


class RowSource(Protocol):
    """What the loader needs of a source (``lake.token_shards.TokenShards`` is one)."""

    seq_len: int

    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]: ...
    def valid_tokens(self, i: int) -> int: ...


@dataclass
class MicroBatch:
    input_ids: np.ndarray     # int64 [rows, seq_len]
    labels: np.ndarray        # int64 [rows, seq_len], IGNORE where no loss
    position_ids: np.ndarray  # int64 [rows, seq_len], 0 at every segment start
    loss_tokens: int          # tokens that carry loss
    rows: list[tuple[str, int]] = field(default_factory=list)  # (source, row) provenance


def example(tokens: np.ndarray, doc_starts: np.ndarray, valid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``input_ids, labels, position_ids`` of one packed row.

    >>> ids, labels, pos = example(np.array([5, 6, 2, 7, 8, 2, 1, 1], dtype=np.uint32), np.array([3]), 6)
    >>> pos.tolist(), labels.tolist()
    ([0, 1, 2, 0, 1, 2, 0, 1], [5, 6, 2, -100, 8, 2, -100, -100])
    """
    seq_len = len(tokens)
    ids = np.asarray(tokens, dtype=np.int64)
    cuts = {0, *(int(s) for s in doc_starts if 0 < s < seq_len)}
    if valid < seq_len:
        cuts.add(int(valid))
    starts = np.array(sorted(cuts), dtype=np.int64)
    segment = np.searchsorted(starts, np.arange(seq_len), side="right") - 1
    positions = np.arange(seq_len, dtype=np.int64) - starts[segment]
    labels = ids.copy()
    labels[starts[starts > 0]] = IGNORE
    labels[valid:] = IGNORE
    return ids, labels, positions


def effective_mixture(mixture: Mapping[str, float], sizes: Mapping[str, int]) -> tuple[dict[str, float], list[str]]:
    """Normalised weights over the sources that have rows; also the weighted sources that were empty.

    >>> effective_mixture({"file_level": 3, "commits": 1}, {"file_level": 10, "commits": 0})
    ({'file_level': 1.0}, ['commits'])
    """
    empty = sorted(s for s, w in mixture.items() if w > 0 and sizes.get(s, 0) == 0)
    kept = {s: float(w) for s, w in sorted(mixture.items()) if w > 0 and sizes.get(s, 0) > 0}
    if not kept:
        raise ValueError(f"no rows to train on: every source with weight in {dict(mixture)} is empty "
                         f"(rows per source: {dict(sizes)})")
    total = sum(kept.values())
    return {s: w / total for s, w in kept.items()}, empty


class MixtureLoader:
    """This rank's micro batches of each step; ``state_dict()`` is what a checkpoint needs to resume exactly."""

    def __init__(self, sources: Mapping[str, RowSource], *, seed: int, micro_batch_size: int, grad_accum_steps: int,
                 world_size: int = 1, rank: int = 0):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.sources = dict(sources)
        self.seed = seed
        self.micro = micro_batch_size
        self.accum = grad_accum_steps
        self.world = world_size
        self.rank = rank
        self.step = 0
        self.cursors = {name: 0 for name in self.sources}
        self._perms: dict[str, tuple[int, np.ndarray]] = {}

    @property
    def global_batch(self) -> int:
        return self.micro * self.accum * self.world

    def state_dict(self) -> dict:
        return {"step": self.step, "cursors": dict(sorted(self.cursors.items())), "seed": self.seed,
                "global_batch": self.global_batch}

    def load_state_dict(self, state: dict) -> None:
        if state["seed"] != self.seed or state["global_batch"] != self.global_batch:
            raise ValueError(f"data state was saved with seed {state['seed']} and global batch "
                             f"{state['global_batch']}; this run has seed {self.seed} and global batch "
                             f"{self.global_batch}: the data order would not continue")
        self.step = int(state["step"])
        self.cursors = {name: int(state["cursors"].get(name, 0)) for name in self.sources}

    def _row(self, source: str, cursor: int) -> int:
        n = len(self.sources[source])
        epoch = cursor // n
        cached = self._perms.get(source)
        if cached is None or cached[0] != epoch:
            rng = np.random.default_rng([self.seed, SOURCES.index(source), epoch])
            cached = (epoch, rng.permutation(n))
            self._perms[source] = cached
        return int(cached[1][cursor % n])

    def draw(self, step: int, mixture: Mapping[str, float]) -> list[tuple[str, int]]:
        """The ``(source, row)`` of every row of the global batch of ``step``; advances the cursors."""
        if step != self.step:
            raise ValueError(f"the loader is at step {self.step}, asked for step {step} (steps must be sequential)")
        names = sorted(mixture)
        weights = np.array([mixture[n] for n in names], dtype=np.float64)
        picks = np.random.default_rng([self.seed, step]).choice(len(names), size=self.global_batch,
                                                                p=weights / weights.sum())
        out = []
        for pick in picks:
            name = names[int(pick)]
            out.append((name, self._row(name, self.cursors[name])))
            self.cursors[name] += 1
        self.step += 1
        return out

    def step_batches(self, step: int, mixture: Mapping[str, float]) -> list[MicroBatch]:
        """This rank's ``grad_accum_steps`` micro batches of ``step``."""
        draw = self.draw(step, mixture)
        batches = []
        for m in range(self.accum):
            first = (m * self.world + self.rank) * self.micro
            rows = draw[first : first + self.micro]
            parts = []
            for name, row in rows:
                tokens, starts = self.sources[name][row]
                parts.append(example(tokens, starts, self.sources[name].valid_tokens(row)))
            ids, labels, pos = (np.stack(x) for x in zip(*parts, strict=True))
            loss_tokens = int((labels != IGNORE).sum())
            batches.append(MicroBatch(ids, labels, pos, loss_tokens, rows))
        return batches
