"""The policy loss: PPO's clipped objective with DAPO's asymmetric clip, dual clip, and the loss aggregations.

Tensors are ``[responses, tokens]`` with a mask of the tokens that train (response tokens; a truncated response
is all zeros when overlong filtering is on). Per token, with ratio ``r = exp(logp - old_logp)`` and advantage
``A``::

    loss = max(-A r, -A clip(r, 1 - clip_ratio_low, 1 + clip_ratio_high))      (PPO, DAPO's clip-higher)
    loss = min(loss, -A clip_ratio_c)                            when A < 0    (dual clip)

Aggregation (``loss_agg_mode``, verl's names): ``token-mean`` divides the masked sum by the number of tokens, so
every token of the batch weighs the same (DAPO: long responses are not down-weighted); ``seq-mean-token-mean``
averages each response's tokens first, then the responses (GRPO's original); ``seq-mean-token-sum`` sums each
response and averages the responses; ``seq-mean-token-sum-norm`` divides the total by a constant (Dr. GRPO).

A step's batch is split into micro batches (and ranks); the normalisers ``num_tokens`` / ``num_seqs`` are those
of the whole mini batch, so the gradients accumulated over the micro batches are those of the whole.
"""

from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def agg_loss(loss_mat: torch.Tensor, mask: torch.Tensor, mode: str, *, num_tokens: float | None = None,
             num_seqs: float | None = None, norm_constant: float | None = None) -> torch.Tensor:
    """Aggregate a ``[responses, tokens]`` loss over the masked tokens.

    >>> loss = torch.tensor([[1.0, 1.0, 1.0, 1.0], [4.0, 0.0, 0.0, 0.0]])
    >>> mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    >>> [round(float(agg_loss(loss, mask, m)), 4) for m in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")]
    [1.6, 2.5, 4.0]
    >>> float(agg_loss(loss, mask, "seq-mean-token-sum-norm", norm_constant=4))
    2.0
    """
    mask = mask.to(loss_mat.dtype)
    if mode == "token-mean":
        denominator = mask.sum() if num_tokens is None else torch.as_tensor(num_tokens, dtype=loss_mat.dtype)
        return (loss_mat * mask).sum() / denominator.clamp(min=1)
    if mode in ("seq-mean-token-sum", "seq-mean-token-mean"):
        tokens = mask.sum(dim=-1)
        per_seq = (loss_mat * mask).sum(dim=-1)
        if mode == "seq-mean-token-mean":
            per_seq = per_seq / tokens.clamp(min=1)
        trained = (tokens > 0).to(loss_mat.dtype)  # fully masked responses are not sequences of the mean
        denominator = trained.sum() if num_seqs is None else torch.as_tensor(num_seqs, dtype=loss_mat.dtype)
        return (per_seq * trained).sum() / denominator.clamp(min=1)
    if mode == "seq-mean-token-sum-norm":
        constant = norm_constant if norm_constant is not None else loss_mat.shape[-1]
        return (loss_mat * mask).sum() / constant
    raise ValueError(f"unknown loss_agg_mode {mode!r}")


def policy_loss(old_logp: torch.Tensor, logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
                clip_ratio_low: float = 0.2, clip_ratio_high: float = 0.28, clip_ratio_c: float = 3.0,
                loss_agg_mode: str = "token-mean", **norm) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped policy-gradient loss and its clip statistics (fractions of the masked tokens).

    ``advantages`` is ``[responses]`` (one per response, broadcast over its tokens) or ``[responses, tokens]``.

    >>> old = torch.zeros(1, 2)
    >>> new = torch.log(torch.tensor([[1.5, 0.5]]))
    >>> loss, stats = policy_loss(old, new, torch.tensor([1.0]), torch.ones(1, 2))
    >>> round(float(loss), 4), stats["clipfrac"]      # 1.5 is clipped to 1.28; 0.5 is not clipped for A > 0
    (-0.89, 0.5)
    """
    if advantages.dim() == 1:
        advantages = advantages[:, None].expand_as(logp)
    mask = mask.to(logp.dtype)
    log_ratio = torch.clamp(logp - old_logp, -20.0, 20.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_ratio_low, 1.0 + clip_ratio_high)
    ppo = torch.maximum(unclipped, clipped)
    dual = torch.minimum(ppo, -advantages * clip_ratio_c)
    per_token = torch.where(advantages < 0, dual, ppo)
    loss = agg_loss(per_token, mask, loss_agg_mode, **norm)
    with torch.no_grad():
        stats = {
            "clipfrac": float(masked_mean((clipped > unclipped).to(logp.dtype), mask)),
            "clipfrac_lower": float(masked_mean(((ppo > -advantages * clip_ratio_c) & (advantages < 0)).to(logp.dtype),
                                                mask)),
            "ppo_kl": float(masked_mean(-log_ratio, mask)),
        }
    return loss, stats


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "low_var_kl") -> torch.Tensor:
    """Per-token KL estimate between the policy and the reference (Schulman's estimators, as verl names them).

    >>> p, q = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25]))
    >>> [round(float(kl_penalty(p, q, k)), 4) for k in ("kl", "abs", "mse", "low_var_kl")]
    [0.6931, 0.6931, 0.2402, 0.1931]
    """
    diff = logp - ref_logp
    if kind == "kl":
        return diff
    if kind == "abs":
        return diff.abs()
    if kind == "mse":
        return 0.5 * diff.square()
    if kind == "low_var_kl":  # k3: exp(ref - logp) - (ref - logp) - 1, non-negative, clamped as verl does
        log_ratio = ref_logp - logp
        return torch.clamp(torch.exp(log_ratio) - log_ratio - 1, min=-10.0, max=10.0)
    raise ValueError(f"unknown kl_loss_type {kind!r}")
