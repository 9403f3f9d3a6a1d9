"""The two training engines behind one interface: DeepSpeed (ZeRO 0-3) and plain torch (the peer).

Both take the same torch AdamW, the same micro batches and the same clip, so a benchmark compares only what
the engine adds. The learning rate is set on the optimizer before every step from the phase schedule.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from training.pretrain.config import PretrainConfig
from training.pretrain.data import MicroBatch
from training.pretrain.ds_config import deepspeed_config
from training.pretrain.loss import fused_linear_cross_entropy

log = logging.getLogger(__name__)


def adamw(model: torch.nn.Module, cfg: PretrainConfig, lr: float) -> torch.optim.AdamW:
    """torch AdamW with weight decay on matrices only (norm weights are 1-D and take none)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    opt = cfg.optimizer
    kwargs = {"fused": True} if opt.fused else {}
    return torch.optim.AdamW([{"params": decay, "weight_decay": opt.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=opt.betas, eps=opt.eps, **kwargs)


class TrainingModel(torch.nn.Module):
    """The causal LM and the loss the trainer optimises: transformers' own, or the chunked fused one.

    The engines wrap this module, so checkpoints name parameters ``lm.*``; :meth:`export_state` drops the prefix.
    """

    def __init__(self, lm: torch.nn.Module, *, fused_loss_chunk: int | None = None):
        super().__init__()
        self.lm = lm
        self.fused_loss_chunk = fused_loss_chunk

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        if self.fused_loss_chunk is None:
            return self.lm(input_ids=input_ids, labels=labels, position_ids=position_ids, use_cache=False).loss
        hidden = self.lm.model(input_ids=input_ids, position_ids=position_ids, use_cache=False).last_hidden_state
        return fused_linear_cross_entropy(hidden, self.lm.lm_head.weight, labels, chunk=self.fused_loss_chunk)

    @staticmethod
    def export_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k.removeprefix("lm."): v for k, v in state.items()}


def training_model(lm: torch.nn.Module, cfg: PretrainConfig) -> TrainingModel:
    if cfg.compile_layers:
        for layer in lm.model.layers:
            layer.compile()
    return TrainingModel(lm, fused_loss_chunk=cfg.fused_loss_chunk)


def to_device(batch: MicroBatch, device: torch.device) -> dict[str, torch.Tensor]:
    return {"input_ids": torch.from_numpy(batch.input_ids).to(device, non_blocking=True),
            "labels": torch.from_numpy(batch.labels).to(device, non_blocking=True),
            "position_ids": torch.from_numpy(batch.position_ids).to(device, non_blocking=True)}


class DeepSpeedEngine:
    """``deepspeed.initialize`` around the model and a torch AdamW; DeepSpeed owns accumulation and clipping."""

    name = "deepspeed"

    def __init__(self, model: torch.nn.Module, cfg: PretrainConfig, world_size: int, device: torch.device):
        import deepspeed

        self.device = device
        ds = deepspeed_config(cfg, world_size, on_gpu=device.type == "cuda")
        optimizer = adamw(model, cfg, lr=0.0)
        self.engine, self.optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds)
        self.ds_config = ds

    @property
    def module(self) -> torch.nn.Module:
        return self.engine.module

    def forward_backward(self, batch: MicroBatch) -> torch.Tensor:
        loss = self.engine(**to_device(batch, self.device))
        self.engine.backward(loss)
        # DeepSpeed counts micro steps in step(); inside an accumulation window it only advances the count.
        if not self.engine.is_gradient_accumulation_boundary():
            self.engine.step()
        return loss.detach()

    def step(self, lr: float) -> float | None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else None

    def save(self, directory: Path, tag: str) -> None:
        self.engine.save_checkpoint(str(directory), tag=tag, save_latest=False)

    def load(self, directory: Path, tag: str) -> None:
        path, _ = self.engine.load_checkpoint(str(directory), tag=tag, load_optimizer_states=True,
                                              load_lr_scheduler_states=False)
        if path is None:
            raise FileNotFoundError(f"DeepSpeed found no checkpoint {tag} under {directory}")

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """The full weights (collective under ZeRO-3: every rank must call it); None on ranks other than 0."""
        import torch.distributed as dist

        if self.ds_config["zero_optimization"]["stage"] == 3:
            state = self.engine._zero3_consolidated_16bit_state_dict()
        else:
            state = self.engine.module.state_dict()
        return TrainingModel.export_state(state) if dist.get_rank() == 0 else None


class TorchEngine:
    """Plain torch: AdamW, gradient accumulation by hand, ``clip_grad_norm_``, DDP when there are several ranks."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, cfg: PretrainConfig, world_size: int, device: torch.device):
        self.device = device
        self.model = model.to(device)
        self.wrapped = self.model
        if world_size > 1:
            self.wrapped = torch.nn.parallel.DistributedDataParallel(self.model)
        self.optimizer = adamw(self.model, cfg, lr=0.0)
        self.accum = cfg.grad_accum_steps
        self.clip = cfg.optimizer.grad_clip
        self.autocast = cfg.bf16

    @property
    def module(self) -> torch.nn.Module:
        return self.model

    def forward_backward(self, batch: MicroBatch) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.wrapped(**to_device(batch, self.device))
        (loss / self.accum).backward()
        return loss.detach()

    def step(self, lr: float) -> float | None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        norm = None
        if self.clip > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    def save(self, directory: Path, tag: str) -> None:
        import torch.distributed as dist

        if dist.is_initialized() and dist.get_rank() != 0:
            return
        (directory / tag).mkdir(parents=True, exist_ok=True)
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()},
                   directory / tag / "torch_state.pt")

    def load(self, directory: Path, tag: str) -> None:
        state = torch.load(directory / tag / "torch_state.pt", map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        import torch.distributed as dist

        if dist.is_initialized() and dist.get_rank() != 0:
            return None
        return TrainingModel.export_state(self.model.state_dict())


def make_engine(model: torch.nn.Module, cfg: PretrainConfig, world_size: int, device: torch.device):
    """The configured engine around ``model`` (a transformers causal LM) and its training loss."""
    wrapped = training_model(model, cfg)
    if cfg.engine == "deepspeed":
        return DeepSpeedEngine(wrapped, cfg, world_size, device)
    return TorchEngine(wrapped, cfg, world_size, device)
