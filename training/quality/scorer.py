"""The quality scorer at inference: tokenization with the stated truncation policy, length-sorted batching,
and two interchangeable backends (transformers forward passes, vLLM's pooling runner).

Truncation policy: a file is scored on its head, BOS plus its first ``max_tokens - 1`` tokens; the rest is
not seen. Both backends get the very same token ids (we tokenize once, here), so their scores agree.
Pooling: the regression head reads the hidden state of the last real token, as LlamaForSequenceClassification
and vLLM's LAST pooling do. Scores are the head's output x 10, on the oracle's 0-10 scale, unclipped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from lake.timing import fixed_cost

log = logging.getLogger(__name__)


def encode(tokenizer, texts: Sequence[str], max_tokens: int) -> tuple[list[list[int]], list[bool]]:
    """Token ids (BOS + head of the file) and whether each file was cut.

    Special-token strings inside a file (a literal ``<|pad|>``) are encoded as plain text, so file content
    can never inject a control token.
    """
    backend = tokenizer.backend_tokenizer
    backend.encode_special_tokens = True
    try:
        encodings = backend.encode_batch(list(texts), add_special_tokens=False)
    finally:
        backend.encode_special_tokens = False
    bos = tokenizer.bos_token_id
    ids, cut = [], []
    for enc in encodings:
        body = enc.ids
        ids.append([bos, *body[: max_tokens - 1]])
        cut.append(len(body) > max_tokens - 1)
    return ids, cut


def token_budget_batches(lengths: Sequence[int], token_budget: int, max_batch: int = 256) -> list[list[int]]:
    """Indices grouped longest-first so each padded batch holds at most ``token_budget`` tokens.

    Sorting by length keeps padding small (a batch's rows have similar lengths); a single row longer than the
    budget still forms its own batch.

    >>> token_budget_batches([5, 100, 7, 90], token_budget=200)
    [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]
        if current and (width * (len(current) + 1) > token_budget or len(current) >= max_batch):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def pooled_scores(model, input_ids, lengths):
    """Regression-head outputs (0-1 scale) at each row's last real token; rows are right-padded.

    No attention mask is needed: attention is causal and padding sits after a row's last real token, so
    nothing that token attends to is padding. Mask-free batches also keep SDPA on its fastest kernels.
    """
    import torch

    hidden = model.base_model(input_ids=input_ids).last_hidden_state
    last = hidden[torch.arange(hidden.shape[0], device=hidden.device), lengths - 1]
    return model.score(last).squeeze(-1)


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int):
    import torch

    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    batch = torch.full((len(rows), int(lengths.max())), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        batch[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return batch, lengths


class Scorer(Protocol):
    name: str

    def score(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray: ...


def resolve_dtype(dtype: str, on_gpu: bool) -> str:
    return ("bfloat16" if on_gpu else "float32") if dtype == "auto" else dtype


class TransformersScorer:
    """Length-sorted, token-budgeted batches through the torch model (CPU or one GPU)."""

    name = "transformers"

    def __init__(self, model_dir: str, *, dtype: str = "auto", token_budget: int = 16_384, device: str | None = None):
        import torch
        from transformers import AutoModelForSequenceClassification

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch_dtype = getattr(torch, resolve_dtype(dtype, self.device.type == "cuda"))
        with fixed_cost("model_load"):
            self.model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch_dtype)
            self.model.to(self.device).eval()
        self.pad_id = self.model.config.pad_token_id if self.model.config.pad_token_id is not None else 0
        self.token_budget = token_budget

    def score(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        import torch

        out = np.zeros(len(token_ids), dtype=np.float32)
        with torch.inference_mode():
            for batch in token_budget_batches([len(t) for t in token_ids], self.token_budget):
                ids, lengths = pad_batch([token_ids[i] for i in batch], self.pad_id)
                raw = pooled_scores(self.model, ids.to(self.device), lengths.to(self.device))
                out[batch] = raw.float().cpu().numpy() * 10.0
        return out


def vllm_cpu_defaults() -> bool:
    """Environment for a vLLM engine on CPU; returns whether a GPU is present (then nothing is changed).

    On CPU: one process (no engine subprocess to spawn: safe under pytest and in a pod) and 1 GiB of KV cache,
    plenty for scoring and short rating answers, so the host-memory check fits a shared machine.
    """
    import torch

    if torch.cuda.is_available():
        return True
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    return False


class VllmScorer:
    """vLLM's pooling runner: ``LLM(runner="pooling")`` and ``LLM.classify`` on pre-tokenized prompts."""

    name = "vllm"

    def __init__(self, model_dir: str, *, dtype: str = "auto", max_model_len: int = 2048,
                 gpu_memory_utilization: float = 0.9, engine_args: dict | None = None):
        on_gpu = vllm_cpu_defaults()
        args = {"dtype": resolve_dtype(dtype, on_gpu), "max_model_len": max_model_len,
                "gpu_memory_utilization": gpu_memory_utilization, "enforce_eager": not on_gpu,
                "seed": 0, **(engine_args or {})}
        with fixed_cost("vllm_engine"):  # the import (seconds on CPU) and the engine's start
            from vllm import LLM

            self.llm = LLM(model=model_dir, runner="pooling", **args)

    def score(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        prompts = [{"prompt_token_ids": list(ids)} for ids in token_ids]
        results = self.llm.classify(prompts, use_tqdm=False)
        return np.array([r.outputs.probs[0] * 10.0 for r in results], dtype=np.float32)


def make_scorer(backend: str, model_dir: str, *, max_tokens: int, dtype: str = "auto", token_budget: int = 16_384,
                gpu_memory_utilization: float = 0.9, engine_args: dict | None = None) -> Scorer:
    if backend == "vllm":
        return VllmScorer(model_dir, dtype=dtype, max_model_len=max_tokens,
                          gpu_memory_utilization=gpu_memory_utilization, engine_args=engine_args)
    if backend == "transformers":
        return TransformersScorer(model_dir, dtype=dtype, token_budget=token_budget)
    raise ValueError(f"unknown scoring backend {backend!r}: use 'vllm' or 'transformers'")


def pick_backend(backend: str, cpu_backend: str) -> str:
    """``auto``: vLLM on a GPU, otherwise the CPU default measured by the scoring benchmark."""
    if backend != "auto":
        return backend
    import torch

    return "vllm" if torch.cuda.is_available() else cpu_backend
