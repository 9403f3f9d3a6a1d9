"""Cross-entropy over a large vocabulary without materialising the logits of the whole batch.

With Seed-Coder's 155,136-token vocabulary, the logits of 4 x 8192 tokens are 5 GB in bf16 and twice that when
upcast for the softmax, plus the same again for their gradient. :func:`fused_linear_cross_entropy` takes the
final hidden states and the output projection instead, and walks the tokens in chunks: for each chunk it
computes the logits, the loss and, right away, the gradients with respect to the hidden states and the
projection; then the chunk's logits are dropped. Backward only scales the stored gradients. Peak extra memory
is one chunk of logits; the arithmetic is the same matmuls the unfused loss does (the idea of Liger-Kernel's
fused linear cross-entropy, written here in plain torch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


class _FusedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int):
        count = (targets != IGNORE).sum().clamp(min=1)
        grad_hidden = torch.zeros_like(hidden)
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if weight.requires_grad else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start : start + chunk]
            y = targets[start : start + chunk]
            logits = (h @ weight.t()).float()
            total += F.cross_entropy(logits, y, ignore_index=IGNORE, reduction="sum")
            # d(sum CE)/d logits = softmax - onehot, zero on ignored rows
            grad = torch.softmax(logits, dim=-1)
            valid = y != IGNORE
            grad[valid, y[valid]] -= 1.0
            grad[~valid] = 0.0
            grad = grad.to(hidden.dtype)
            grad_hidden[start : start + chunk] = grad @ weight
            if grad_weight is not None:
                grad_weight += (grad.t() @ h).float()
        ctx.weight_dtype = weight.dtype
        ctx.save_for_backward(grad_hidden / count, None if grad_weight is None else grad_weight / count)
        return total / count

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        grad_weight = None if grad_weight is None else (grad_weight * grad_output).to(ctx.weight_dtype)
        return grad_hidden * grad_output.to(grad_hidden.dtype), grad_weight, None, None


def fused_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, *,
                               chunk: int = 4096) -> torch.Tensor:
    """Mean next-token cross-entropy of ``hidden @ weight.T`` against ``labels`` (HF convention: unshifted).

    ``hidden`` [batch, seq, dim], ``weight`` [vocab, dim], ``labels`` [batch, seq] with -100 where no loss.
    """
    dim = hidden.shape[-1]
    h = hidden[:, :-1].reshape(-1, dim)
    y = labels[:, 1:].reshape(-1)
    return _FusedLinearCrossEntropy.apply(h, weight, y, chunk)
