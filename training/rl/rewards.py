"""Reward functions: plain functions ``(completions, **kw) -> list[float]``, registered by name.

``stages.rl.reward.weights`` names the functions a run uses and their weights; a response's reward is the weighted
sum. Each function takes what the trainer knows about the responses as keywords and ignores the rest:

    passed           did every test pass in the sandbox (False for format errors, which are not run)
    pass_fractions   the share of the task's tests that passed, each judged alone
    code             the extracted code, or None (a format error)
    lengths          response lengths in tokens

DAPO's soft overlong punishment (``reward.overlong_buffer``) is :func:`overlong_penalty`, added on top.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

RewardFn = Callable[..., list[float]]
REWARDS: dict[str, RewardFn] = {}


def register(name: str) -> Callable[[RewardFn], RewardFn]:
    def add(fn: RewardFn) -> RewardFn:
        if name in REWARDS:
            raise ValueError(f"reward function {name!r} is registered twice")
        REWARDS[name] = fn
        return fn

    return add


@register("all_pass")
def all_pass(completions: Sequence[str], *, passed: Sequence[bool], **_) -> list[float]:
    """1 when the program passed every test of its task in the sandbox, else 0.

    >>> all_pass(["a", "b"], passed=[True, False])
    [1.0, 0.0]
    """
    return [1.0 if ok else 0.0 for ok in passed]


@register("pass_fraction")
def pass_fraction(completions: Sequence[str], *, pass_fractions: Sequence[float], **_) -> list[float]:
    """The share of the task's tests that passed (partial credit).

    >>> pass_fraction(["a", "b"], pass_fractions=[1.0, 2 / 3])
    [1.0, 0.6666666666666666]
    """
    return [float(f) for f in pass_fractions]


@register("format")
def format_reward(completions: Sequence[str], *, code: Sequence[str | None], **_) -> list[float]:
    """0 when the answer's code could be extracted, -1 for a format error.

    >>> format_reward(["def f(): pass", "???"], code=["def f(): pass", None])
    [0.0, -1.0]
    """
    return [0.0 if c is not None else -1.0 for c in code]


def overlong_penalty(lengths: Sequence[int], *, max_response_length: int, buffer_len: int,
                     penalty_factor: float) -> list[float]:
    """DAPO's soft overlong punishment: 0 up to ``max_response_length - buffer_len`` tokens, then falling
    linearly to ``-penalty_factor`` at ``max_response_length``.

    >>> overlong_penalty([10, 16, 20], max_response_length=20, buffer_len=8, penalty_factor=1.0)
    [0.0, -0.5, -1.0]
    """
    if buffer_len > max_response_length:
        raise ValueError(f"overlong_buffer.len {buffer_len} exceeds max_response_length {max_response_length}")
    expected = max_response_length - buffer_len
    return [min(-(n - expected) / buffer_len * penalty_factor, 0.0) for n in lengths]


def combine(weights: dict[str, float], completions: Sequence[str], **kw) -> tuple[list[float], dict[str, list[float]]]:
    """The weighted sum of the named reward functions, and each function's values (for the metrics).

    >>> total, parts = combine({"all_pass": 1.0, "format": 0.5}, ["ok", "bad", "wrong"],
    ...                        passed=[True, False, False], code=["x = 1", None, "x = 2"])
    >>> total, parts["format"]
    ([1.0, -0.5, 0.0], [0.0, -1.0, 0.0])
    """
    parts = {}
    for name in weights:
        if name not in REWARDS:
            raise ValueError(f"unknown reward function {name!r}; registered: {sorted(REWARDS)}")
        values = REWARDS[name](completions, **kw)
        if len(values) != len(completions):
            raise ValueError(f"reward function {name!r} returned {len(values)} values for {len(completions)} "
                             f"completions")
        parts[name] = values
    total = [sum(weights[name] * parts[name][i] for name in weights) for i in range(len(completions))]
    return total, parts
