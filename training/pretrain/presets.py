"""Model presets: Llama-structured decoders from a few million parameters (CPU) to the released Seed-Coder-8B.

Every preset builds a transformers ``LlamaForCausalLM`` so the exported checkpoint loads unchanged in
transformers and vLLM. Attention stays inside each document of a packed row: the trainer passes
``position_ids`` that restart at every document start and no attention mask, and transformers turns the
restarts into a block-diagonal causal mask (SDPA/eager) or variable-length segments (flash attention).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

# The released Seed-Coder tokenizer size; the 8B preset fixes it, smaller presets take the data's tokenizer.
SEED_CODER_VOCAB = 155_136


@dataclass(frozen=True)
class ModelPreset:
    """The architecture fields of a Llama decoder (what a checkpoint must match to be resumed)."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int
    # None: the vocabulary of the training data's tokenizer.
    vocab_size: int | None = None
    rope_theta: float = 500_000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def with_vocab(self, data_vocab: int) -> ModelPreset:
        """The preset resolved against the tokenizer: fixed vocabularies must hold every token id."""
        if self.vocab_size is None:
            return replace(self, vocab_size=data_vocab)
        if data_vocab > self.vocab_size:
            raise ValueError(f"preset {self.name!r} has a vocabulary of {self.vocab_size} but the token shards "
                             f"use {data_vocab} ids")
        return self

    def architecture(self) -> dict[str, Any]:
        if self.vocab_size is None:
            raise ValueError(f"preset {self.name!r} has no vocabulary yet: call with_vocab() first")
        return {k: v for k, v in asdict(self).items() if k != "name"}


PRESETS: dict[str, ModelPreset] = {
    # ~3M non-embedding parameters; head_dim 64 is one of vLLM's CPU attention sizes.
    "tiny": ModelPreset("tiny", hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096),
    # The Llama-3.2-1B body (16 layers, 2048 hidden, 8192 FFN, 32/8 heads), untied as Seed-Coder is.
    "1b": ModelPreset("1b", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                      num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32_768),
    # The released Seed-Coder-8B config.json.
    "seed-coder-8b": ModelPreset("seed-coder-8b", hidden_size=4096, intermediate_size=14_336,
                                 num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                                 max_position_embeddings=32_768, vocab_size=SEED_CODER_VOCAB),
}


def preset(name: str) -> ModelPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}") from None


def llama_config(spec: ModelPreset, *, bos_id: int | None, eos_id: int, pad_id: int | None,
                 attn_implementation: str = "sdpa"):
    """The transformers ``LlamaConfig`` of a resolved preset."""
    from transformers import LlamaConfig

    arch = spec.architecture()
    config = LlamaConfig(
        vocab_size=arch["vocab_size"],
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.head_dim,
        max_position_embeddings=spec.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": spec.rope_theta},
        rms_norm_eps=spec.rms_norm_eps,
        tie_word_embeddings=spec.tie_word_embeddings,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        use_cache=False,
    )
    config._attn_implementation = attn_implementation
    return config


def build_model(spec: ModelPreset, *, seed: int, bos_id: int | None, eos_id: int, pad_id: int | None,
                attn_implementation: str = "sdpa", dtype=None):
    """A freshly initialised model; the same seed gives the same weights on every rank and every run."""
    import torch
    from transformers import LlamaForCausalLM

    config = llama_config(spec, bos_id=bos_id, eos_id=eos_id, pad_id=pad_id,
                          attn_implementation=attn_implementation)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if dtype is not None:
        model = model.to(dtype)
    return model


def parameter_counts(spec: ModelPreset) -> dict[str, int]:
    """Parameters by kind, computed from the shape (no model needed).

    ``non_embedding`` leaves out the input embedding table (a lookup, no matmul) but keeps the output
    projection, which is a real matmul on every token.

    >>> parameter_counts(PRESETS["seed-coder-8b"])["total"]
    8250462208
    """
    arch = spec.architecture()
    h, f, layers = spec.hidden_size, spec.intermediate_size, spec.num_hidden_layers
    kv = spec.num_key_value_heads * spec.head_dim
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * f + 2 * h
    embedding = arch["vocab_size"] * h
    head = 0 if spec.tie_word_embeddings else arch["vocab_size"] * h
    non_embedding = layers * per_layer + h + (embedding if spec.tie_word_embeddings else head)
    return {"embedding": embedding, "non_embedding": non_embedding, "total": embedding + layers * per_layer + h + head}


def flops_per_token(spec: ModelPreset, seq_len: int) -> float:
    """Training FLOPs per token: 6 x non-embedding parameters plus causal attention.

    Attention scores and the weighted sum cost 2 x 2 x seq x head_dim x heads per token forward for full
    attention; causal halves it, and backward doubles forward: 6 x layers x hidden x seq in all.
    """
    attention = 6 * spec.num_hidden_layers * spec.num_attention_heads * spec.head_dim * seq_len
    return 6.0 * parameter_counts(spec)["non_embedding"] + attention
