"""pass@k with the unbiased estimator of Chen et al. (2021, "Evaluating Large Language Models Trained on Code").

With n samples of a task of which c pass, pass@k = 1 - C(n-c, k) / C(n, k): the chance that k samples drawn
without replacement from the n include a passing one. The product form avoids the huge binomials:

    1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k / i)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of one task.

    >>> pass_at_k(10, 0, 1), pass_at_k(10, 10, 1), round(pass_at_k(10, 3, 1), 12)
    (0.0, 1.0, 0.3)
    >>> round(pass_at_k(10, 1, 5), 6)   # one right among ten, five drawn: half the time
    0.5
    >>> pass_at_k(5, 1, 5)
    1.0
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> float | None:
    """The mean pass@k over tasks given ``(n, c)`` per task; None when some task has fewer than k samples."""
    if not counts or any(n < k for n, _c in counts):
        return None
    return float(np.mean([pass_at_k(n, c, k) for n, c in counts]))
