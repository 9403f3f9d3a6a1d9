"""The DeepSpeed config, generated from :class:`PretrainConfig` (never a hand-written JSON).

``train_batch_size`` is computed as micro batch x accumulation x world size and handed to DeepSpeed along with
its two factors, so DeepSpeed's own consistency check guards the arithmetic. The learning rate is not in the
config: the trainer sets it on the optimizer each step from the phase schedule.
"""

from __future__ import annotations

from typing import Any

from training.pretrain.config import PretrainConfig


def deepspeed_config(cfg: PretrainConfig, world_size: int, *, on_gpu: bool) -> dict[str, Any]:
    """The ``config`` dict for ``deepspeed.initialize``.

    >>> from training.pretrain.config import PretrainConfig
    >>> ds = deepspeed_config(PretrainConfig(micro_batch_size=4, grad_accum_steps=2, zero_stage=2), 8, on_gpu=True)
    >>> ds["train_batch_size"], ds["zero_optimization"]["stage"], ds["gradient_clipping"]
    (64, 2, 1.0)
    """
    if world_size < 1:
        raise ValueError(f"world size must be at least 1, got {world_size}")
    zero: dict[str, Any] = {"stage": cfg.zero_stage}
    if cfg.zero_stage >= 1:
        # Overlap reduction with backward on GPUs; on CPU (gloo) overlap only adds thread contention.
        zero.update({"overlap_comm": on_gpu, "contiguous_gradients": True,
                     "reduce_bucket_size": 50_000_000, "allgather_bucket_size": 50_000_000})
    if cfg.zero_stage == 3:
        # Gather the full weights when saving, so the export needs no offline conversion.
        zero.update({"stage3_gather_16bit_weights_on_model_save": True})
    return {
        "train_batch_size": cfg.global_batch(world_size),
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.grad_accum_steps,
        "gradient_clipping": cfg.optimizer.grad_clip,
        "bf16": {"enabled": cfg.bf16},
        "zero_optimization": zero,
        # The trainer logs its own numbers (TensorBoard + stage stats); DeepSpeed's would duplicate them.
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
        "zero_allow_untested_optimizer": True,
    }
