"""One GRPO round: generate -> score in the sandbox -> dynamic sampling -> advantages -> clipped policy update.

Per step, on every rank (one process per GPU; one CPU process locally):

1. ``generate``: the policy's weights go into the rollout engine (timed: ``sync_s``); the rank generates ``n``
   responses for its share of the generation batch's prompts (every prompt seeded on its own).
2. ``score``: the answer's code is extracted, judged in the sandbox (a local pool, or the sandbox service), and the
   registered reward functions give each response its reward; every rank then holds every group (all-gather).
3. Dynamic sampling keeps the groups that carry a signal (``algorithm.filter_groups``, the report's format rule),
   generating more batches until ``train_batch_size`` groups are kept or ``max_num_gen_batches`` is spent.
4. ``advantages``: GRPO's group-relative advantage per response (Dr. GRPO's unnormalised form by config).
5. ``update``: ``ppo_epochs`` passes of mini batches over the batch, each rank its share in micro batches, the
   clipped loss (``training/rl/loss.py``) normalised over the whole mini batch; truncated responses are masked
   (``overlong_filter``).

Every step's metrics go to the step log and TensorBoard; every ``save_freq`` steps the engine (optimizer
included), the sampler, the random states and the logs so far go to the lake, so a killed round resumes at its
last checkpoint and ends with the policy an uninterrupted round would have produced. At the end the policy is
exported in Hugging Face format (``hf``) and the stage is committed.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import pickle
import random
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from lake.stage import Lake, Partition, StageRun
from training.pretrain import checkpoint as ckpt
from training.pretrain.train import DistEnv, init_distributed
from training.rl import rewards as reward_fns
from training.rl.advantages import grpo_advantages
from training.rl.config import ResolvedRound, RLConfig
from training.rl.dynamic_sampling import BatchFiller, Group
from training.rl.extract import extract_code
from training.rl.judge import Judge
from training.rl.loss import agg_loss, kl_penalty, masked_mean, policy_loss
from training.rl.policy import Actor, Trajectory, architecture, collate, export_policy, rank_device
from training.rl.rollout import Completion, Rollout, SamplingSpec, make_rollout, prompt_seed
from training.rl.sampler import PromptSampler
from training.rl.tasks import RLTask
from training.sandbox import SandboxConfig

log = logging.getLogger(__name__)
METRICS = "metrics"
ROLLOUTS = "rollouts"


def round_stage(number: int) -> str:
    return f"rl_round_{number}"


@dataclass
class Scored:
    """One prompt's responses, scored (a dynamic-sampling group's payload)."""

    position: int
    task_index: int
    seed: int
    completions: list[Completion]
    codes: list[str | None]
    verdicts: list[str]
    rewards: list[float]
    parts: dict[str, list[float]]


class SegmentLog:
    """Records since the last checkpoint, written to the lake as one JSONL segment per checkpoint."""

    def __init__(self, dataset: str):
        self.dataset = dataset
        self.pending: list[dict[str, Any]] = []

    def flush(self, storage, attempt_prefix: str, step: int) -> None:
        if self.pending:
            body = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.pending)
            storage.write_bytes(f"{attempt_prefix}/{self.dataset}/steps-{step:08d}.jsonl", body.encode())
        self.pending = []

    def drop_after(self, storage, attempt_prefix: str, step: int) -> None:
        """Forget segments a killed run wrote after the checkpoint this run resumes from (they are redone)."""
        for key in storage.list(f"{attempt_prefix}/{self.dataset}"):
            name = key.rsplit("/", 1)[-1]
            if name.startswith("steps-") and int(name[6:14]) > step:
                storage.delete_prefix(key)


def rng_state() -> dict[str, str]:
    """Python's, numpy's and torch's random states, as text for the checkpoint's JSON."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return {k: base64.b64encode(pickle.dumps(v)).decode() for k, v in state.items()}


def restore_rng(state: dict[str, str]) -> None:
    raw = {k: pickle.loads(base64.b64decode(v)) for k, v in state.items()}  # noqa: S301 (our own checkpoint)
    random.setstate(raw["python"])
    np.random.set_state(raw["numpy"])
    torch.set_rng_state(raw["torch"])
    if "cuda" in raw and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(raw["cuda"])


class GRPOTrainer:
    """One rank of one GRPO round on one task set."""

    def __init__(self, lake: Lake, partition: Partition, cfg: RLConfig, sandbox: SandboxConfig, *, round_number: int,
                 policy_dir: Path, policy_uri: str, tasks: list[RLTask], tasks_uri: str, fresh: bool = False):
        self.lake, self.partition, self.cfg, self.sandbox_cfg = lake, partition, cfg, sandbox
        self.round: ResolvedRound = cfg.round(round_number)
        self.stage = round_stage(round_number)
        self.policy_dir, self.policy_uri = policy_dir, policy_uri
        self.tasks, self.tasks_uri = tasks, tasks_uri
        self.fresh = fresh
        self.env = DistEnv.from_environ()
        self.device = rank_device(self.env.local_rank, cfg.threads)
        self.scratch = Path(cfg.scratch_dir or Path(tempfile.gettempdir()) / "seedcoder-rl")
        r = self.round
        self.spec = SamplingSpec(n=r.n, temperature=r.temperature, top_p=cfg.rollout.top_p, top_k=cfg.rollout.top_k,
                                 max_tokens=r.max_response_length, stop=cfg.rollout.stop)

    # -- distributed helpers ----------------------------------------------------------------------------
    def _broadcast(self, value: Any) -> Any:
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _gather(self, value: Any) -> list[Any]:
        out = [None] * self.env.world_size
        dist.all_gather_object(out, value)
        return out

    def _sum(self, *values: float) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return t.tolist()

    def _max(self, value: float) -> float:
        t = torch.tensor([value], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    # -- the run ----------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any] | None:
        """Train the round, export, and (rank 0) commit; returns the committed stats on rank 0."""
        init_distributed(self.env, self.device)
        if self.env.rank == 0:
            with StageRun(self.lake, self.partition, self.stage, resume=not self.fresh and self._resumable(),
                          params={"policy": self.policy_uri, "tasks": self.tasks_uri,
                                  "round": self.round.model_dump(), **self.cfg.model_dump(mode="json")}) as run:
                self._broadcast(run.attempt_prefix)
                self._train(run.attempt_prefix, run.stats)
            return run.stats.to_dict()
        self._train(self._broadcast(None), None)
        return None

    def _resumable(self) -> bool:
        """Whether the interrupted attempt a resume would adopt trained on this run's inputs (policy, task set, ranks).

        One that did not (the round's policy or task set was re-made since) is stale: a new attempt starts instead
        of failing on its checkpoint."""
        latest = StageRun(self.lake, self.partition, self.stage, resume=True)
        steps = ckpt.complete_steps(self.lake.storage, latest.attempt_prefix)
        if not steps:
            return True
        state = ckpt.read_state(self.lake.storage, latest.attempt_prefix, steps[-1])
        if self._saved_inputs(state) == self._inputs():
            return True
        log.warning("%s: the interrupted attempt %s trained on %s; this run has %s: starting a new attempt",
                    self.stage, latest.attempt, self._saved_inputs(state), self._inputs())
        return False

    def _inputs(self) -> dict[str, Any]:
        """What a checkpoint must have been trained on to be resumed by this run."""
        return {"policy": self.policy_uri, "tasks": self.tasks_uri, "world_size": self.env.world_size}

    def _saved_inputs(self, state: dict[str, Any]) -> dict[str, Any]:
        return {k: state.get(k) for k in self._inputs()}

    def _setup(self) -> None:
        from transformers import AutoTokenizer

        cfg, r = self.cfg, self.round
        tokenizer = AutoTokenizer.from_pretrained(self.policy_dir)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.prompt_ids = [tokenizer.encode(t.prompt, add_special_tokens=False) for t in self.tasks]
        longest = max(len(p) for p in self.prompt_ids)
        if longest > cfg.data.max_prompt_length:
            raise ValueError(f"a prompt of the round's task set has {longest} tokens, above data.max_prompt_length "
                             f"{cfg.data.max_prompt_length} (the warm-up step drops such tasks)")
        self.accum = cfg.micro_batches_per_update(r.n, self.env.world_size)
        self.on_policy = cfg.actor.ppo_epochs == 1 and cfg.mini_batch_prompts == cfg.data.train_batch_size
        self.actor = Actor(self.policy_dir, cfg.actor, micro_batch_size=cfg.actor.ppo_micro_batch_size_per_gpu,
                           grad_accum_steps=self.accum, world_size=self.env.world_size, device=self.device,
                           reference=cfg.actor.use_kl_loss)
        self.rollout: Rollout = make_rollout(self.policy_dir, cfg.rollout, seed=cfg.seed, device=self.device,
                                             max_model_len=cfg.data.max_prompt_length + r.max_response_length)
        self.judge = Judge(self.sandbox_cfg, cfg.reward.limits, per_test=cfg.reward.per_test,
                           url=cfg.reward.sandbox_url, concurrency=cfg.reward.sandbox_concurrency)
        self.sampler = PromptSampler(len(self.tasks), seed=cfg.seed + self.round.number, shuffle=cfg.data.shuffle)
        self.architecture = architecture(self.policy_dir)

    def _train(self, attempt_prefix: str, stats) -> None:
        cfg, env, r = self.cfg, self.env, self.round
        self._setup()
        local_ckpt = self.scratch / self.partition.prefix / self.stage / attempt_prefix.rsplit("=", 1)[-1] / "checkpoints"
        steplog, rollouts = SegmentLog(METRICS), SegmentLog(ROLLOUTS)
        start = self._resume(attempt_prefix, local_ckpt, steplog, rollouts)
        writer = self._tensorboard(start) if env.rank == 0 else None
        if env.rank == 0:
            log.info("%s of %s: %d tasks, steps %d..%d, %d prompts x %d responses per step (gen batch %d), max "
                     "response %d tokens, temperature %s, rollout %s, %d rank(s), %d micro batch(es) of %d per update",
                     self.stage, self.partition, len(self.tasks), start, r.steps, cfg.data.train_batch_size, r.n,
                     cfg.data.prompts_per_gen_batch, r.max_response_length, r.temperature, self.rollout.name,
                     env.world_size, self.accum, cfg.actor.ppo_micro_batch_size_per_gpu)
        for step in range(start, r.steps):
            record, samples = self.train_step(step)
            steplog.pending.append(record)
            rollouts.pending += samples
            if env.rank == 0:
                log.info("step %d/%d reward %.3f pass %.3f kept %d/%d groups (%d gen batches) len %.0f trunc %.2f "
                         "clip %.3f entropy %.3f gen %.0f tok/s train %.0f tok/s sync %.2fs",
                         step + 1, r.steps, record["reward_mean"], record["pass_rate"], record["groups_kept"],
                         record["groups_generated"], record["gen_batches"], record["response_length_mean"],
                         record["truncated_share"], record["clipfrac"], record["entropy"],
                         record["gen_tokens_per_s"], record["train_tokens_per_s"], record["sync_s"])
                for key, value in record.items():
                    if isinstance(value, int | float) and key not in ("step", "round"):
                        writer.add_scalar(f"rl/{key}", value, step + 1)
            if (step + 1) % cfg.save_freq == 0 or step + 1 == r.steps:
                self._save(attempt_prefix, local_ckpt, step + 1, steplog, rollouts, writer)
        self._export(attempt_prefix, stats)
        if stats is not None:
            history = self._history(attempt_prefix)
            stats.records_in = len(self.tasks)
            stats.records_out = r.steps
            stats.metrics.update(self._summary(history, start))
            stats.metrics["xcom"] = {k: stats.metrics[k] for k in ("round", "steps", "reward_first", "reward_last",
                                                                   "pass_rate_first", "pass_rate_last", "export")}
            if writer is not None:
                writer.close()
                ckpt.upload_dir(self.lake.storage, Path(writer.log_dir), f"{attempt_prefix}/tensorboard")
        dist.barrier()
        # Last: an in-process vLLM engine shares this process's default group and destroys it when it shuts down.
        self.rollout.close()

    # -- one step ---------------------------------------------------------------------------------------
    def train_step(self, step: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """One GRPO step; returns its metrics record and the logged rollouts (rank 0)."""
        cfg, r = self.cfg, self.round
        t_step = time.perf_counter()
        t0 = time.perf_counter()
        self.rollout.load_weights(self.actor.weights())
        sync_s = self._max(time.perf_counter() - t0)
        fg = cfg.algorithm.filter_groups
        filler = BatchFiller(target=cfg.data.train_batch_size, max_num_gen_batches=fg.max_num_gen_batches,
                             filter_groups=fg.enable, metric=fg.metric,
                             drop_format_errors=cfg.algorithm.drop_format_error_groups)
        generated: list[Scored] = []
        gen_s = judge_s = 0.0
        while not filler.full:
            filler.check_budget()
            indices = self.sampler.take(cfg.data.prompts_per_gen_batch)
            t0 = time.perf_counter()
            local = self.generate(step, filler.gen_batches, indices)
            gen_s += self._max(time.perf_counter() - t0)
            t0 = time.perf_counter()
            scored = self.score(local)
            judge_s += self._max(time.perf_counter() - t0)
            generated += scored
            filler.add([Group(rewards=s.rewards, passed=[v == "passed" for v in s.verdicts],
                              format_ok=[c is not None for c in s.codes], payload=s) for s in scored])
        self.rollout.sleep()
        batch = [g.payload for g in filler.batch()]
        trajectories = self.advantages(batch)
        lr = self.lr(step)
        t0 = time.perf_counter()
        update = self.update(trajectories, lr)
        train_s = self._max(time.perf_counter() - t0)
        gen_tokens = sum(len(c.token_ids) for s in generated for c in s.completions)
        responses = [c for s in generated for c in s.completions]
        verdicts = Counter(v for s in generated for v in s.verdicts)
        record = {
            "step": step + 1, "round": r.number, "lr": lr,
            "reward_mean": float(np.mean([x for s in generated for x in s.rewards])),
            "reward_std": float(np.std([x for s in generated for x in s.rewards])),
            "batch_reward_mean": float(np.mean([x for s in batch for x in s.rewards])),
            "pass_rate": verdicts["passed"] / len(responses),
            "format_error_share": verdicts["format_error"] / len(responses),
            "groups_generated": filler.generated_groups, "groups_kept": len(batch),
            "groups_dropped_share": filler.dropped_share, "gen_batches": filler.gen_batches,
            "drops": dict(filler.drops), "verdicts": dict(sorted(verdicts.items())),
            "response_length_mean": gen_tokens / len(responses),
            "truncated_share": sum(c.truncated for c in responses) / len(responses),
            **{f"reward_{name}": float(np.mean([x for s in generated for x in s.parts[name]]))
               for name in generated[0].parts},
            **update,
            "sync_s": sync_s, "gen_s": gen_s, "judge_s": judge_s, "train_s": train_s,
            "gen_tokens_per_s": gen_tokens / gen_s if gen_s else 0.0,
            "train_tokens_per_s": update["train_tokens"] / train_s if train_s else 0.0,
            "step_s": time.perf_counter() - t_step, "sampling": self.spec.record(), "rollout": self.rollout.name,
        }
        logged = []
        if self.env.rank == 0:
            for s in generated[: self.cfg.log_rollout_groups]:
                task = self.tasks[s.task_index]
                logged += [{"step": step + 1, "task_id": task.task_id, "seed": s.seed, "sample": i,
                            "response": c.text, "reward": s.rewards[i], "verdict": s.verdicts[i],
                            "truncated": c.truncated, "tokens": len(c.token_ids), "sampling": self.spec.record()}
                           for i, c in enumerate(s.completions)]
        return record, logged

    def generate(self, step: int, gen_batch: int, indices: list[int]) -> list[tuple[int, int, int, list[Completion]]]:
        """This rank's share of the batch's prompts: (position, task index, seed, completions)."""
        mine = [(pos, idx) for pos, idx in enumerate(indices) if pos % self.env.world_size == self.env.rank]
        seeds = [prompt_seed(self.cfg.seed, self.round.number, step, gen_batch, pos) for pos, _ in mine]
        completions = self.rollout.generate([self.prompt_ids[idx] for _, idx in mine], self.spec, seeds) if mine else []
        return [(pos, idx, seed, c) for (pos, idx), seed, c in zip(mine, seeds, completions, strict=True)]

    def score(self, local: list[tuple[int, int, int, list[Completion]]]) -> list[Scored]:
        """Extract, judge and reward this rank's responses; returns every rank's groups in prompt order."""
        rcfg = self.cfg.reward
        items = [(self.tasks[idx], extract_code(c.text, rcfg.answer_format, self.tasks[idx].language))
                 for _, idx, _, completions in local for c in completions]
        outcomes = iter(self.judge(items))
        codes = iter([code for _, code in items])
        scored = []
        for pos, idx, seed, completions in local:
            outs = [next(outcomes) for _ in completions]
            group_codes = [next(codes) for _ in completions]
            texts = [c.text for c in completions]
            total, parts = reward_fns.combine(rcfg.weights, texts, passed=[o.passed for o in outs],
                                              pass_fractions=[o.pass_fraction for o in outs], code=group_codes,
                                              lengths=[len(c.token_ids) for c in completions])
            ob = rcfg.overlong_buffer
            if ob.enable:
                penalty = reward_fns.overlong_penalty([len(c.token_ids) for c in completions],
                                                      max_response_length=self.round.max_response_length,
                                                      buffer_len=ob.len, penalty_factor=ob.penalty_factor)
                parts["overlong"] = penalty
                total = [t + p for t, p in zip(total, penalty, strict=True)]
            scored.append(Scored(pos, idx, seed, completions, group_codes, [o.verdict for o in outs], total, parts))
        everyone = [s for share in self._gather(scored) for s in share]
        return sorted(everyone, key=lambda s: s.position)

    def advantages(self, batch: list[Scored]) -> list[Trajectory]:
        """Group-relative advantages; the responses of the batch in group order."""
        alg = self.cfg.algorithm
        rewards = [x for s in batch for x in s.rewards]
        groups = [g for g, s in enumerate(batch) for _ in s.rewards]
        adv = grpo_advantages(rewards, groups, norm_by_std=alg.norm_adv_by_std_in_grpo, epsilon=alg.epsilon)
        out, k = [], 0
        for s in batch:
            for c in s.completions:
                out.append(Trajectory(self.prompt_ids[s.task_index], list(c.token_ids), float(adv[k]),
                                      trains=not (alg.overlong_filter and c.truncated)))
                k += 1
        return out

    def lr(self, step: int) -> float:
        o = self.cfg.actor.optim
        return o.lr * min(1.0, (step + 1) / o.lr_warmup_steps) if o.lr_warmup_steps else o.lr

    # -- the update -------------------------------------------------------------------------------------
    def _micro_batches(self, mini: list[Trajectory]) -> list[list[Trajectory]]:
        mine = mini[self.env.rank:: self.env.world_size]
        size = self.cfg.actor.ppo_micro_batch_size_per_gpu
        return [mine[i: i + size] for i in range(0, len(mine), size)]

    def _reference_passes(self, trajectories: list[Trajectory]) -> None:
        """Old log-probs (when the update is not exactly on-policy) and reference log-probs (KL), no grad."""
        need_old = not self.on_policy
        need_ref = self.cfg.actor.use_kl_loss
        if not (need_old or need_ref):
            return
        size = self.cfg.actor.ppo_micro_batch_size_per_gpu
        mine = trajectories[self.env.rank:: self.env.world_size]
        with torch.no_grad():
            for i in range(0, len(mine), size):
                micro = mine[i: i + size]
                b = collate(micro, self.pad_id, self.device)
                for flag, ref, attr in ((need_old, False, "old_logp"), (need_ref, True, "ref_logp")):
                    if flag:
                        logp, _ = self.actor.forward(b, self.round.temperature, reference=ref)
                        for t, row in zip(micro, logp.tolist(), strict=True):
                            setattr(t, attr, row[: len(t.response_ids)])

    def update(self, trajectories: list[Trajectory], lr: float) -> dict[str, float]:
        """``ppo_epochs`` passes of mini batches; each rank runs its share in micro batches."""
        cfg = self.cfg
        self._reference_passes(trajectories)
        per_mini = cfg.mini_batch_prompts * self.round.n
        minis = [trajectories[i: i + per_mini] for i in range(0, len(trajectories), per_mini)]
        sums: Counter = Counter()
        grad_norms = []
        for _epoch in range(cfg.actor.ppo_epochs):
            for mini in minis:
                norm = {"num_tokens": float(sum(len(t.response_ids) for t in mini if t.trains)),
                        "num_seqs": float(sum(1 for t in mini if t.trains and t.response_ids))}
                if cfg.actor.loss_agg_mode == "seq-mean-token-sum-norm":
                    norm = {"norm_constant": float(self.round.max_response_length)}
                for micro in self._micro_batches(mini):
                    stats = self.loss(micro, norm)
                    sums.update(stats)
                norm_value = self.actor.step(lr)
                if norm_value is not None:
                    grad_norms.append(norm_value)
        totals = dict(zip(sums.keys(), self._sum(*sums.values()), strict=True))
        tokens = max(totals.get("tokens", 0.0), 1.0)
        out = {"pg_loss": totals["pg_loss"] / max(totals["micro_batches"], 1.0),
               "clipfrac": totals["clipfrac"] / tokens, "clipfrac_lower": totals["clipfrac_lower"] / tokens,
               "ppo_kl": totals["ppo_kl"] / tokens, "entropy": totals["entropy"] / tokens,
               "grad_norm": float(np.mean(grad_norms)) if grad_norms else None,
               "train_tokens": int(totals["forward_tokens"]), "masked_responses": int(totals["masked_responses"])}
        if cfg.actor.use_kl_loss:
            out["kl"] = totals["kl"] / tokens
        return out

    def loss(self, micro: list[Trajectory], norm: dict[str, float]) -> dict[str, float]:
        """Forward, loss and backward of one micro batch; returns token-weighted sums for the metrics."""
        a = self.cfg.actor
        b = collate(micro, self.pad_id, self.device)
        logp, entropy = self.actor.forward(b, self.round.temperature)
        mask = b["loss_mask"]
        if self.on_policy:
            old = logp.detach()
        else:
            old = torch.tensor([t.old_logp + [0.0] * (mask.shape[1] - len(t.old_logp)) for t in micro],
                               dtype=logp.dtype, device=logp.device)
        world = float(self.env.world_size)  # the engines average gradients over ranks; the loss is a global sum
        pg, stats = policy_loss(old, logp, b["advantages"], mask, clip_ratio_low=a.clip_ratio_low,
                                clip_ratio_high=a.clip_ratio_high, clip_ratio_c=a.clip_ratio_c,
                                loss_agg_mode=a.loss_agg_mode, **norm)
        loss = pg * world
        if a.entropy_coeff:
            loss = loss - a.entropy_coeff * agg_loss(entropy, mask, a.loss_agg_mode, **norm) * world
        kl_sum = 0.0
        if a.use_kl_loss:
            ref = torch.tensor([t.ref_logp + [0.0] * (mask.shape[1] - len(t.ref_logp)) for t in micro],
                               dtype=logp.dtype, device=logp.device)
            kl = kl_penalty(logp, ref, a.kl_loss_type)
            loss = loss + a.kl_loss_coef * agg_loss(kl, mask, a.loss_agg_mode, **norm) * world
            kl_sum = float((kl.detach() * mask).sum())
        self.actor.backward(loss)
        tokens = float(mask.sum())
        return {"pg_loss": float(pg.detach()) * world, "micro_batches": 1.0, "tokens": tokens,
                "clipfrac": stats["clipfrac"] * tokens, "clipfrac_lower": stats["clipfrac_lower"] * tokens,
                "ppo_kl": stats["ppo_kl"] * tokens, "kl": kl_sum,
                "entropy": float(masked_mean(entropy.detach(), mask)) * tokens,
                "forward_tokens": float(b["attention_mask"].sum()),
                "masked_responses": float(sum(not t.trains for t in micro))}

    # -- checkpoints, logs, export ----------------------------------------------------------------------
    def _resume(self, attempt_prefix: str, local: Path, steplog: SegmentLog, rollouts: SegmentLog) -> int:
        storage = self.lake.storage
        steps = ckpt.complete_steps(storage, attempt_prefix)
        if not steps:
            if self.env.rank == 0:
                steplog.drop_after(storage, attempt_prefix, 0)
                rollouts.drop_after(storage, attempt_prefix, 0)
            dist.barrier()
            return 0
        step = steps[-1]
        state = ckpt.read_state(storage, attempt_prefix, step)
        where = storage.uri(ckpt.checkpoint_prefix(attempt_prefix, step))
        ckpt.check_architecture(state["architecture"], self.architecture, where)
        if self._saved_inputs(state) != self._inputs():
            raise ValueError(f"checkpoint {where} was trained on {self._saved_inputs(state)}; this run has "
                             f"{self._inputs()}: start a fresh attempt (--fresh)")
        if self.env.local_rank == 0:
            ckpt.download_prefix(storage, ckpt.checkpoint_prefix(attempt_prefix, step), local / ckpt.tag(step),
                                 skip=(ckpt.STATE,))
        dist.barrier()
        self.actor.load(local, ckpt.tag(step))
        self.sampler.load_state_dict(state["sampler"])
        restore_rng(state["rng"][self.env.rank])
        if self.env.rank == 0:
            steplog.drop_after(storage, attempt_prefix, step)
            rollouts.drop_after(storage, attempt_prefix, step)
            log.info("resumed %s from %s (step %d)", self.stage, where, step)
        dist.barrier()
        return step

    def _save(self, attempt_prefix: str, local: Path, step: int, steplog: SegmentLog, rollouts: SegmentLog,
              writer) -> None:
        storage = self.lake.storage
        t0 = time.perf_counter()
        self.actor.save(local, ckpt.tag(step))
        rngs = self._gather(rng_state())
        dist.barrier()
        if self.env.local_rank == 0:
            ckpt.upload_dir(storage, local / ckpt.tag(step), ckpt.checkpoint_prefix(attempt_prefix, step))
        dist.barrier()
        if self.env.rank == 0:
            steplog.flush(storage, attempt_prefix, step)
            rollouts.flush(storage, attempt_prefix, step)
            if writer is not None:
                writer.flush()
                ckpt.upload_dir(storage, Path(writer.log_dir), f"{attempt_prefix}/tensorboard")
            ckpt.write_state(storage, attempt_prefix, step, {
                "step": step, "round": self.round.number, "sampler": self.sampler.state_dict(), "rng": rngs,
                "architecture": self.architecture, "engine": self.cfg.actor.strategy,
                "world_size": self.env.world_size, "policy": self.policy_uri, "tasks": self.tasks_uri,
                "config": self.cfg.model_dump(mode="json"),
            })
            removed = ckpt.prune(storage, attempt_prefix, self.cfg.keep_checkpoints)
            log.info("checkpoint step %d -> %s (%.1fs)%s", step,
                     storage.uri(ckpt.checkpoint_prefix(attempt_prefix, step)), time.perf_counter() - t0,
                     f"; pruned {removed}" if removed else "")
        else:
            steplog.pending, rollouts.pending = [], []
        for old in local.glob("step-*"):
            if old.name != ckpt.tag(step):
                shutil.rmtree(old, ignore_errors=True)
        dist.barrier()

    def _tensorboard(self, start: int):
        from torch.utils.tensorboard import SummaryWriter

        directory = self.scratch / self.partition.prefix / self.stage / "tensorboard" / f"start{start:08d}-{os.getpid()}"
        # purge_step hides events a killed run wrote after the checkpoint this run resumes from.
        return SummaryWriter(log_dir=str(directory), purge_step=start or None)

    def _history(self, attempt_prefix: str) -> list[dict[str, Any]]:
        storage, records = self.lake.storage, []
        for key in sorted(storage.list(f"{attempt_prefix}/{METRICS}")):
            records += [json.loads(line) for line in storage.read_bytes(key).decode().splitlines() if line]
        return sorted(records, key=lambda r: r["step"])

    def _summary(self, history: list[dict], start: int) -> dict[str, Any]:
        head, tail = history[0], history[-1]
        return {
            "round": self.round.number, "round_config": self.round.model_dump(), "steps": self.round.steps,
            "resumed_from_step": start, "policy": self.policy_uri, "tasks": self.tasks_uri, "task_count": len(self.tasks),
            "reward_first": head["reward_mean"], "reward_last": tail["reward_mean"],
            "pass_rate_first": head["pass_rate"], "pass_rate_last": tail["pass_rate"],
            "reward_curve": [round(h["reward_mean"], 4) for h in history],
            **{f"{key}_mean": float(np.mean([h[key] for h in history]))
               for key in ("groups_dropped_share", "sync_s", "gen_tokens_per_s", "train_tokens_per_s", "step_s")},
            "judge_runs": self.judge.runs, "rollout": self.rollout.name, "world_size": self.env.world_size,
            "sampling": self.spec.record(),
        }

    def _export(self, attempt_prefix: str, stats) -> None:
        state = self.actor.weights()
        if self.env.rank != 0:
            return
        out = self.scratch / self.partition.prefix / self.stage / "export" / attempt_prefix.rsplit("=", 1)[-1]
        shutil.rmtree(out, ignore_errors=True)
        export_policy(state, self.policy_dir, out, self.cfg.export_dtype)
        stats.bytes_out = ckpt.upload_dir(self.lake.storage, out, f"{attempt_prefix}/hf")
        stats.metrics["export"] = self.lake.storage.uri(f"{attempt_prefix}/hf")
        shutil.rmtree(out, ignore_errors=True)
