"""Which repositories the dataset build holds out of training, for the evaluation's held-out loss.

A repository is held out when the first 32 bits of ``sha256(f"{seed}\\0{repo}")`` fall below ``fraction * 2**32``:
a property of the repository's name alone, so the same repositories are held out whatever else changes (the
build's seed, the input stage of an ablation arm, the month) and a file of a held-out repository never meets
the model in training, nor do its commits. The same rule as a Spark column and as a Python function (tested equal).
"""

from __future__ import annotations

import hashlib

SPACE = 1 << 32


def threshold(fraction: float) -> int:
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {fraction}")
    return int(fraction * SPACE)


def is_heldout(repo: str, *, seed: int, fraction: float) -> bool:
    """The rule in Python.

    >>> sum(is_heldout(f"org/repo{i}", seed=0, fraction=0.1) for i in range(10_000)) in range(900, 1100)
    True
    >>> is_heldout("org/repo", seed=0, fraction=0.0)
    False
    """
    digest = hashlib.sha256(f"{seed}\0{repo}".encode()).hexdigest()
    return int(digest[:8], 16) < threshold(fraction)


def heldout_column(repo_column, *, seed: int, fraction: float):
    """The rule as a Spark boolean column over a column of repository names."""
    from pyspark.sql import functions as F

    digest = F.sha2(F.concat(F.lit(f"{seed}\0"), repo_column), 256)
    return F.conv(F.substring(digest, 1, 8), 16, 10).cast("long") < F.lit(threshold(fraction))
