"""The policy being trained: a Hugging Face causal LM on the pretraining engine (DeepSpeed ZeRO, or plain torch).

What RL needs of the model is the log-probability of each response token (and the entropy of each next-token
distribution): :class:`PolicyModule` computes them for the response positions only, projecting hidden states to
the vocabulary ``logprob_chunk`` rows at a time and recomputing each chunk in backward, so the logits of a whole
micro batch never exist at once (a 155K vocabulary times 32K-token responses would not fit). Logits are divided by
the rollout temperature, so the probabilities are those the responses were sampled from.

:class:`Actor` wraps the module in ``training.pretrain.engine`` (DeepSpeed with a torch AdamW, or plain torch):
the same engine, checkpoints and export as pretraining. The loss is normalised by the caller over the whole
mini batch (all micro batches and ranks), so backward does not rescale it by the accumulation steps.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.checkpoint import checkpoint

from training.pretrain.config import OptimizerConfig, PretrainConfig
from training.pretrain.engine import DeepSpeedEngine, TorchEngine, TrainingModel
from training.rl.config import ActorConfig

log = logging.getLogger(__name__)

# Files of a model directory that are weights or written by save_pretrained; everything else (tokenizer files,
# fim.json, ...) is copied to the export as it is.
WEIGHT_FILES = ("config.json", "generation_config.json", "model.safetensors.index.json", "pytorch_model.bin.index.json")


@dataclass
class Trajectory:
    """One response as the update needs it."""

    prompt_ids: list[int]
    response_ids: list[int]
    advantage: float
    # False: the response is masked out of the loss (truncated, with overlong filtering on).
    trains: bool = True
    old_logp: list[float] | None = None
    ref_logp: list[float] | None = None


def collate(trajectories: list[Trajectory], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded prompt+response rows, and where each response token sits.

    ``positions`` are flat indices (row-major over responses, then tokens) of the hidden states that predict the
    response tokens ``targets``; ``token_mask`` [B, R] marks real response tokens, ``loss_mask`` those that train.

    >>> b = collate([Trajectory([5, 6], [7, 8, 9], 1.0), Trajectory([5], [7], -1.0, trains=False)], 0, torch.device("cpu"))
    >>> b["input_ids"].tolist(), b["positions"].tolist(), b["targets"].tolist()
    ([[5, 6, 7, 8, 9], [5, 7, 0, 0, 0]], [1, 2, 3, 5], [7, 8, 9, 7])
    >>> b["loss_mask"].tolist()
    [[True, True, True], [False, False, False]]
    """
    width = max(len(t.prompt_ids) + len(t.response_ids) for t in trajectories)
    longest = max(len(t.response_ids) for t in trajectories)
    ids = torch.full((len(trajectories), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(trajectories), width), dtype=torch.long)
    token_mask = torch.zeros((len(trajectories), longest), dtype=torch.bool)
    positions, targets = [], []
    for i, t in enumerate(trajectories):
        seq = t.prompt_ids + t.response_ids
        ids[i, : len(seq)] = torch.tensor(seq)
        attention[i, : len(seq)] = 1
        token_mask[i, : len(t.response_ids)] = True
        start = len(t.prompt_ids)
        positions += [i * width + start + j - 1 for j in range(len(t.response_ids))]
        targets += t.response_ids
    trains = torch.tensor([t.trains for t in trajectories])[:, None]
    return {"input_ids": ids.to(device), "attention_mask": attention.to(device),
            "positions": torch.tensor(positions, device=device), "targets": torch.tensor(targets, device=device),
            "token_mask": token_mask.to(device), "loss_mask": (token_mask & trains).to(device),
            "advantages": torch.tensor([t.advantage for t in trajectories], dtype=torch.float32, device=device)}


def to_matrix(flat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Flat per-token values (row-major over the mask's True cells) as a zero-padded [B, R] matrix."""
    out = flat.new_zeros(mask.shape)
    out[mask] = flat
    return out


class PolicyModule(torch.nn.Module):
    """A causal LM whose forward gives the log-probability and entropy of the response tokens (flat)."""

    def __init__(self, lm: torch.nn.Module, *, chunk: int):
        super().__init__()
        self.lm = lm
        self.chunk = chunk

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor,
                targets: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask,
                                       use_cache=False).last_hidden_state
        selected = hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions)
        logps, entropies = [], []
        for start in range(0, selected.shape[0], self.chunk):
            h, y = selected[start: start + self.chunk], targets[start: start + self.chunk]
            if torch.is_grad_enabled():
                lp, ent = checkpoint(self._chunk, h, y, temperature, use_reentrant=False)
            else:
                lp, ent = self._chunk(h, y, temperature)
            logps.append(lp)
            entropies.append(ent)
        return torch.cat(logps), torch.cat(entropies)

    def _chunk(self, hidden: torch.Tensor, targets: torch.Tensor, temperature: float):
        logits = self.lm.get_output_embeddings()(hidden).float() / temperature
        log_probs = torch.log_softmax(logits, dim=-1)
        entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
        return log_probs.gather(-1, targets[:, None]).squeeze(-1), entropy


def rank_device(local_rank: int, threads: int | None) -> torch.device:
    """This rank's device (its GPU, else the CPU) made current, and torch's CPU threads when configured."""
    device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if threads:
        torch.set_num_threads(threads)
    return device


def load_lm(model_dir: Path, *, gradient_checkpointing: bool = False):
    """The model in fp32 (master weights; bf16 compute is the engine's), as transformers saved it."""
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if gradient_checkpointing:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return lm


def architecture(model_dir: Path) -> dict:
    """The fields of the model's config a checkpoint must match to be resumed."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir).to_dict()
    keys = ("model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "tie_word_embeddings")
    return {k: config.get(k) for k in keys}


def engine_settings(actor: ActorConfig, *, micro_batch_size: int, grad_accum_steps: int) -> PretrainConfig:
    """The pretraining engine reads its settings from a :class:`PretrainConfig`: the actor's, mapped onto it."""
    o = actor.optim
    return PretrainConfig(engine=actor.strategy, zero_stage=actor.zero_stage, bf16=actor.bf16,
                          micro_batch_size=micro_batch_size, grad_accum_steps=grad_accum_steps,
                          optimizer=OptimizerConfig(betas=o.betas, eps=o.eps, weight_decay=o.weight_decay,
                                                    fused=o.fused, grad_clip=o.grad_clip))


class Actor:
    """The policy on its engine, plus (with ``use_kl_loss``) a frozen reference copy."""

    def __init__(self, model_dir: Path, actor: ActorConfig, *, micro_batch_size: int, grad_accum_steps: int,
                 world_size: int, device: torch.device, reference: bool = False):
        self.cfg = actor
        self.device = device
        lm = load_lm(model_dir, gradient_checkpointing=actor.gradient_checkpointing)
        self.module = PolicyModule(lm, chunk=actor.logprob_chunk)
        settings = engine_settings(actor, micro_batch_size=micro_batch_size, grad_accum_steps=grad_accum_steps)
        engine = DeepSpeedEngine if actor.strategy == "deepspeed" else TorchEngine
        self.engine = engine(self.module, settings, world_size, device)
        self.reference = None
        if reference:
            self.reference = PolicyModule(load_lm(model_dir), chunk=actor.logprob_chunk).to(device).eval()
            self.reference.requires_grad_(False)

    def forward(self, batch: dict[str, torch.Tensor], temperature: float, *, reference: bool = False):
        """Per-token log-probabilities and entropies as [B, R] matrices (zeros outside ``token_mask``)."""
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "positions", "targets")}
        if reference:
            logp, ent = self.reference(**inputs, temperature=temperature)
        elif self.cfg.strategy == "deepspeed":
            logp, ent = self.engine.engine(**inputs, temperature=temperature)
        else:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
                logp, ent = self.engine.wrapped(**inputs, temperature=temperature)
        return to_matrix(logp, batch["token_mask"]), to_matrix(ent, batch["token_mask"])

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradient of an already normalised loss (no division by the accumulation steps)."""
        if self.cfg.strategy == "deepspeed":
            ds = self.engine.engine
            ds.backward(loss, scale_wrt_gas=False)
            # DeepSpeed counts micro steps in step(); inside an accumulation window it only advances the count.
            if not ds.is_gradient_accumulation_boundary():
                ds.step()
        else:
            loss.backward()

    def step(self, lr: float) -> float | None:
        """The optimizer step at the end of an accumulation window; returns the gradient norm."""
        return self.engine.step(lr)

    def weights(self) -> dict[str, torch.Tensor]:
        """The full weights with transformers' names, on every rank (what the rollout engine loads)."""
        if self.cfg.strategy == "deepspeed" and self.cfg.zero_stage == 3:
            raise ValueError("the rollout engine needs the full weights on every rank: use actor.zero_stage <= 2")
        return TrainingModel.export_state(self.engine.module.state_dict())

    def save(self, directory: Path, tag: str) -> None:
        self.engine.save(directory, tag)

    def load(self, directory: Path, tag: str) -> None:
        self.engine.load(directory, tag)


def export_policy(state: dict[str, torch.Tensor], source_dir: Path, out_dir: Path, dtype: str = "bfloat16") -> Path:
    """The trained weights as a Hugging Face model directory of the same architecture as ``source_dir``, with its
    tokenizer and other files: transformers, vLLM and the evaluation stage load it unchanged."""
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    config = AutoConfig.from_pretrained(source_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    weights = {k: v.detach().to("cpu", getattr(torch, dtype)).contiguous() for k, v in state.items()}
    missing, unexpected = model.load_state_dict(weights, strict=False, assign=True)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ValueError(f"the trained weights do not match {source_dir}: missing {missing}, unexpected {unexpected}")
    if config.tie_word_embeddings:
        model.tie_weights()
    model.config.dtype = dtype
    if (source_dir / "generation_config.json").exists():
        model.generation_config = GenerationConfig.from_pretrained(source_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(source_dir.iterdir()):
        if path.is_file() and path.name not in WEIGHT_FILES and path.suffix not in (".safetensors", ".bin"):
            shutil.copyfile(path, out_dir / path.name)
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir
