"""Which prompts each generation batch takes: the round's task set in order (the curriculum's), epoch after epoch,
or a seeded permutation per epoch. The state (epoch, position) goes into every checkpoint, so a resumed round
draws exactly the prompts an uninterrupted one would have drawn.
"""

from __future__ import annotations

import numpy as np


class PromptSampler:
    """Task indices, ``take(k)`` at a time.

    >>> s = PromptSampler(5, seed=0, shuffle=False)
    >>> s.take(3), s.take(3), s.state_dict()
    ([0, 1, 2], [3, 4, 0], {'epoch': 1, 'position': 1})
    >>> t = PromptSampler(5, seed=0, shuffle=True)
    >>> t.load_state_dict({'epoch': 1, 'position': 1}); t.take(2) == PromptSampler(5, 0, True).take(8)[6:]
    True
    """

    def __init__(self, size: int, seed: int, shuffle: bool):
        if size < 1:
            raise ValueError("the round's task set is empty: nothing to sample prompts from")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch = 0
        self.position = 0

    def _order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def take(self, k: int) -> list[int]:
        out: list[int] = []
        while len(out) < k:
            order = self._order(self.epoch)
            chunk = order[self.position: self.position + k - len(out)]
            out += [int(i) for i in chunk]
            self.position += len(chunk)
            if self.position == self.size:
                self.epoch += 1
                self.position = 0
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
