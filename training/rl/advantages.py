"""GRPO's group-relative advantages: each response is scored against the other responses to the same prompt.

``(r - mean) / (std + eps)`` per group (GRPO), or ``r - mean`` (Dr. GRPO: no division by the group's spread,
which otherwise up-weights prompts whose responses barely differ). ``std`` is the sample standard deviation
(n - 1 in the denominator), as verl computes it. The advantage is the same for every token of a response.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def grpo_advantages(rewards: Sequence[float], groups: Sequence[Hashable], *, norm_by_std: bool = True,
                    epsilon: float = 1e-6) -> np.ndarray:
    """One advantage per response; ``groups[i]`` names the prompt of response ``i``.

    >>> grpo_advantages([1.0, 0.0, 0.0, 1.0], ["a", "a", "b", "b"]).round(4).tolist()
    [0.7071, -0.7071, -0.7071, 0.7071]
    >>> grpo_advantages([1.0, 0.0, 0.0, 0.0], ["a"] * 4, norm_by_std=False).tolist()
    [0.75, -0.25, -0.25, -0.25]
    >>> grpo_advantages([0.5, 0.5], ["a", "a"]).tolist()   # no spread, no signal
    [0.0, 0.0]
    """
    r = np.asarray(rewards, dtype=np.float64)
    if len(r) != len(groups):
        raise ValueError(f"{len(r)} rewards for {len(groups)} group labels")
    out = np.empty_like(r)
    index: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        index.setdefault(g, []).append(i)
    for g, members in index.items():
        if len(members) < 2:
            raise ValueError(f"group {g!r} has {len(members)} response: GRPO needs at least two per prompt")
        values = r[members]
        centred = values - values.mean()
        out[members] = centred / (values.std(ddof=1) + epsilon) if norm_by_std else centred
    return out
