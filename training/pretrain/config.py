"""``stages.pretrain`` of the profile YAML: every knob of a pretraining run, with its default documented.

Derived values (global batch, steps per phase) are computed in code from these fields, never written by hand.
This module imports no torch, so the DAG and the k8s renderer can validate a configuration cheaply.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from lake.config import StrictModel
from lake.launch import K8sLaunchConfig

SOURCES = ("file_level", "repo_level", "commits")
Source = Literal["file_level", "repo_level", "commits"]


class PhaseConfig(StrictModel):
    """One phase of the schedule: a length (tokens or steps), a learning rate, a context length, a mixture."""

    name: str
    # Length of the phase in tokens (padding included, as the optimizer sees them) ...
    tokens: int | None = Field(None, gt=0)
    # ... or in optimizer steps; exactly one of the two.
    steps: int | None = Field(None, gt=0)
    # Peak (constant) learning rate of the phase.
    lr: float = Field(gt=0)
    # Context length the phase trains at; None takes the shards' seq_len, a number must match it.
    seq_len: int | None = Field(None, ge=2)
    # FIM rate the phase's shards were built with (FIM is applied in dataset_build); checked against the
    # shard index when the index records one.
    fim_rate: float | None = Field(None, ge=0, le=1)
    # Sampling weight per token source; weights are normalised, sources left out get none.
    mixture: dict[Source, float] = {"file_level": 1.0}

    @model_validator(mode="after")
    def _length(self) -> PhaseConfig:
        if (self.tokens is None) == (self.steps is None):
            raise ValueError(f"phase {self.name!r}: give exactly one of tokens or steps")
        if not self.mixture or any(w < 0 for w in self.mixture.values()) or sum(self.mixture.values()) <= 0:
            raise ValueError(f"phase {self.name!r}: mixture needs non-negative weights with a positive sum")
        return self


# The report's schedule (6T tokens): 8K context at 3e-4 (1T code+math web, then 4T curated code: our
# shards hold the code part), then the continued phase at 32K on long-context (repository-level) and commit
# data, 3e-4/sqrt(10) for 400B tokens and 3e-5 for 600B. A phase trains one context length, so it draws only
# sources packed at that length (the dataset build packs file_level at 8K, repo_level and commits at 32K).
# (?) The report does not say where the 8K->32K switch sits relative to the two learning rates, nor the
# mixture weights; we switch at the start of the continued phase.
SEED_CODER_PHASES = (
    PhaseConfig(name="regular", tokens=5_000_000_000_000, lr=3e-4, seq_len=8192, fim_rate=0.5,
                mixture={"file_level": 1.0}),
    PhaseConfig(name="continued_high_lr", tokens=400_000_000_000, lr=3e-4 / math.sqrt(10), seq_len=32_768,
                fim_rate=0.1, mixture={"repo_level": 0.7, "commits": 0.3}),
    PhaseConfig(name="continued_low_lr", tokens=600_000_000_000, lr=3e-5, seq_len=32_768, fim_rate=0.1,
                mixture={"repo_level": 0.7, "commits": 0.3}),
)


class OptimizerConfig(StrictModel):
    """torch AdamW (DeepSpeed wraps it; its own JIT-compiled Adam is not used)."""

    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    # Applied to matrices only; norms take none.
    weight_decay: float = Field(0.1, ge=0)
    # torch's fused AdamW kernel (GPU only).
    fused: bool = False
    # Global gradient-norm clip (DeepSpeed gradient_clipping); 0 disables it.
    grad_clip: float = Field(1.0, ge=0)


class LocalLaunchConfig(StrictModel):
    """How the local profile starts the workers."""

    # "deepspeed": the DeepSpeed launcher spawns the ranks; "inline": the stage process is the one rank, no launcher
    # (the local profile's demo, tests, debugging: the launcher only adds its start and exit around one rank).
    launcher: Literal["deepspeed", "inline"] = "deepspeed"
    # Ranks on this machine (CPU processes over gloo locally).
    processes: int = Field(1, ge=1)
    # Rendezvous port of the local ranks; 0 picks a free one (several runs can share a machine).
    master_port: int = Field(0, ge=0, le=65_535)

    @model_validator(mode="after")
    def _inline_is_one_rank(self) -> LocalLaunchConfig:
        if self.launcher == "inline" and self.processes != 1:
            raise ValueError(f"launcher 'inline' runs one rank in the stage process; processes: {self.processes} "
                             "needs launcher: deepspeed")
        return self


class PretrainConfig(StrictModel):
    """``stages.pretrain`` (a run trains on one release's packed shards)."""

    # Stage of the release whose committed packed token shards are the training data.
    input: str = "dataset_build"
    # Where the weights start. "scratch": random init from ``seed``, trained on ``phases``. "base_release":
    # continued pretraining from the final model of the base release the release's manifest names (same
    # tokenizer required: cut the release with its tokenizer pinned), trained on ``continue_phases``.
    # "auto": base_release when the manifest names a base release that has a trained model, else scratch.
    init: Literal["auto", "scratch", "base_release"] = "auto"
    # Model preset: tiny (CPU), 1b (one GPU), seed-coder-8b (the released config).
    preset: Literal["tiny", "1b", "seed-coder-8b"] = "tiny"
    # transformers attention kernel: sdpa everywhere, flash_attention_2 on GPUs that have it.
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    # Seeds the initial weights and the data order.
    seed: int = 0
    # Training engine: DeepSpeed (ZeRO) or plain torch (the benchmark's peer, and a debugging aid).
    engine: Literal["deepspeed", "torch"] = "deepspeed"
    # ZeRO stage: 0 (plain data parallel), 1 (optimizer states), 2 (+gradients), 3 (+parameters).
    zero_stage: Literal[0, 1, 2, 3] = 2
    # bf16 mixed precision (fp32 master weights); off on CPU.
    bf16: bool = False
    # Recompute each layer's activations in backward (needed for 32K context on 8B; costs ~30% compute).
    activation_checkpointing: bool = False
    # Cross-entropy fused with the output projection, in chunks of this many tokens (training/pretrain/loss.py):
    # never holds the whole batch's logits. None: transformers' loss on full logits. Not with ZeRO-3.
    fused_loss_chunk: int | None = Field(None, ge=1)
    # torch.compile each decoder layer (in place, so checkpoints keep their parameter names).
    compile_layers: bool = False
    # Rows per rank per forward pass.
    micro_batch_size: int = Field(8, ge=1)
    # Micro batches accumulated per optimizer step.
    grad_accum_steps: int = Field(1, ge=1)
    # Linear warmup from 0 to the first phase's learning rate.
    warmup_steps: int = Field(2000, ge=0)
    phases: list[PhaseConfig] = list(SEED_CODER_PHASES)
    # The schedule of a continued run (init from a base release): by default the report's continued phase
    # (long context, 3e-4/sqrt(10) then 3e-5), with its own warmup.
    continue_phases: list[PhaseConfig] = list(SEED_CODER_PHASES[1:])
    continue_warmup_steps: int = Field(0, ge=0)
    # If set, every phase's token length is scaled so that the schedule totals this many tokens
    # (keeps the report's proportions on a small budget).
    token_budget: int | None = Field(None, gt=0)
    optimizer: OptimizerConfig = OptimizerConfig()
    # Save a checkpoint every this many steps (and at the end).
    checkpoint_every: int = Field(1000, ge=1)
    # Checkpoints kept in the lake; older ones are deleted once a newer one is complete.
    keep_checkpoints: int = Field(2, ge=1)
    # Log loss, tokens/s and MFU every this many steps.
    log_every: int = Field(10, ge=1)
    # Dense bf16 (or fp32 on CPU) matmul FLOP/s of one device for MFU; None measures it at start.
    peak_flops: float | None = Field(None, gt=0)
    # torch intra-op threads per rank (CPU); None keeps torch's default.
    threads: int | None = Field(None, ge=1)
    # dtype of the exported Hugging Face weights.
    export_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    # Local scratch for DeepSpeed checkpoint files and TensorBoard events on their way to the lake;
    # None: {tempdir}/seedcoder-pretrain.
    scratch_dir: str | None = None
    local: LocalLaunchConfig = LocalLaunchConfig()
    # The Indexed Job of the k8s profile (lake/launch.py; plugins/distributed_launch.py reads it at run time).
    k8s: K8sLaunchConfig = K8sLaunchConfig()

    @model_validator(mode="after")
    def _phases(self) -> PretrainConfig:
        for key in ("phases", "continue_phases"):
            phases = getattr(self, key)
            if not phases:
                raise ValueError(f"{key}: at least one phase is needed")
            names = [p.name for p in phases]
            if len(set(names)) != len(names):
                raise ValueError(f"{key}: names must be unique, got {names}")
        if self.fused_loss_chunk is not None and self.zero_stage == 3:
            raise ValueError("fused_loss_chunk reads the output projection directly, which ZeRO-3 partitions: "
                             "use zero_stage <= 2 or drop fused_loss_chunk")
        if self.token_budget is not None and any(p.tokens is None for p in self.phases + self.continue_phases):
            raise ValueError("token_budget scales token lengths: give every phase in tokens, not steps")
        return self

    def continued(self) -> PretrainConfig:
        """This config with the continued schedule in place of the from-scratch one."""
        return self.model_copy(update={"phases": list(self.continue_phases),
                                       "warmup_steps": self.continue_warmup_steps})

    def global_batch(self, world_size: int) -> int:
        """Rows per optimizer step: micro batch x accumulation x data-parallel ranks."""
        return self.micro_batch_size * self.grad_accum_steps * world_size
