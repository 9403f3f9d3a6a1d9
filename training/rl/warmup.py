"""The cold start: a short supervised warm-up on (prompt, reference solution) pairs before any GRPO step.

A small or base policy solves almost nothing of a fresh task set, so every group would have zero reward spread
and dynamic sampling would drop them all. A few hundred steps of next-token loss on the responses (never on the
prompts) give it non-zero pass rates; the report warms its reasoning model up the same way (LR 2e-5) on verified
solutions. References are judged in the sandbox first: one that fails its own tests is not taught
(``reference_fails``). The response is the reference written in the run's answer format, then eos.

The step also fixes the run's task set: every task whose prompt fits ``data.max_prompt_length`` is committed as
``tasks`` (the curriculum and the rounds read it from there), next to the warmed-up policy ``hf``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch
import torch.distributed as dist

from lake.stage import Lake, Partition, StageRun
from training.pretrain import checkpoint as ckpt
from training.pretrain.train import DistEnv, init_distributed
from training.rl.config import RLConfig
from training.rl.extract import format_reference
from training.rl.judge import Judge
from training.rl.policy import Actor, Trajectory, collate, export_policy, rank_device
from training.rl.sampler import PromptSampler
from training.rl.tasks import RLTask
from training.sandbox import SandboxConfig

log = logging.getLogger(__name__)
STAGE = "rl_warmup"


def task_table(tasks: list[RLTask], **columns: list) -> pa.Table:
    """Tasks as committed (``order`` keeps the set's order; extra columns, e.g. pass rates, alongside)."""
    rows = [{**t.to_row(), "order": i, **{k: v[i] for k, v in columns.items()}} for i, t in enumerate(tasks)]
    return pa.Table.from_pylist(rows)


class Warmup:
    """One rank of the warm-up of one run."""

    def __init__(self, lake: Lake, partition: Partition, cfg: RLConfig, sandbox: SandboxConfig, *, model_dir: Path,
                 model_uri: str, tasks: list[RLTask], tasks_source: str):
        self.lake, self.partition, self.cfg, self.sandbox = lake, partition, cfg, sandbox
        self.model_dir, self.model_uri = model_dir, model_uri
        self.tasks, self.tasks_source = tasks, tasks_source
        self.env = DistEnv.from_environ()
        self.device = rank_device(self.env.local_rank, cfg.threads)
        self.scratch = Path(cfg.scratch_dir or Path(tempfile.gettempdir()) / "seedcoder-rl")

    def run(self) -> dict[str, Any] | None:
        init_distributed(self.env, self.device)
        if self.env.rank == 0:
            with StageRun(self.lake, self.partition, STAGE,
                          params={"model": self.model_uri, "tasks": self.tasks_source,
                                  **self.cfg.model_dump(mode="json")}) as run:
                box = [run.attempt_prefix]
                dist.broadcast_object_list(box, src=0)
                self._run(run, run.attempt_prefix, run.stats)
            return run.stats.to_dict()
        box = [None]
        dist.broadcast_object_list(box, src=0)
        self._run(None, box[0], None)
        return None

    def _examples(self, tokenizer, run: StageRun | None) -> list[Trajectory]:
        """(prompt, formatted reference + eos) pairs of the tasks whose reference passes; rank 0 decides."""
        cfg = self.cfg
        kept, drops = None, {}
        if self.env.rank == 0:
            prompts = [tokenizer.encode(t.prompt, add_special_tokens=False) for t in self.tasks]
            fitting = [i for i, p in enumerate(prompts) if len(p) <= cfg.data.max_prompt_length]
            drops["prompt_too_long"] = len(self.tasks) - len(fitting)
            run.write_table("tasks", task_table([self.tasks[i] for i in fitting]), 0)
            run.stats.records_in = len(self.tasks)
            run.stats.records_out = len(fitting)
            pool = [i for i in fitting if self.tasks[i].reference]
            drops["no_reference"] = len(fitting) - len(pool)
            pool = pool[: cfg.warmup.max_tasks] if cfg.warmup.max_tasks else pool
            if cfg.warmup.steps and pool:
                judge = Judge(self.sandbox, cfg.reward.limits, per_test=False, url=cfg.reward.sandbox_url,
                              concurrency=cfg.reward.sandbox_concurrency)
                outcomes = judge([(self.tasks[i], self.tasks[i].reference) for i in pool])
                bad = [self.tasks[i].task_id for i, o in zip(pool, outcomes, strict=True) if not o.passed]
                if bad:
                    log.warning("%d reference solution(s) fail their own tests and are not taught: %s", len(bad),
                                ", ".join(bad[:20]))
                drops["reference_fails"] = len(bad)
                pool = [i for i, o in zip(pool, outcomes, strict=True) if o.passed]
            kept = []
            for i in pool:
                response = tokenizer.encode(format_reference(self.tasks[i].reference, cfg.reward.answer_format,
                                                             self.tasks[i].language),
                                            add_special_tokens=False) + [tokenizer.eos_token_id]
                if len(response) > cfg.data.max_response_length:
                    drops["reference_too_long"] = drops.get("reference_too_long", 0) + 1
                    continue
                kept.append((prompts[i], response))
            for reason, count in drops.items():
                run.stats.drop(reason, count)
        box = [kept]
        dist.broadcast_object_list(box, src=0)
        return [Trajectory(p, r, advantage=0.0) for p, r in box[0]]

    def _run(self, run: StageRun | None, attempt_prefix: str, stats) -> None:
        from transformers import AutoTokenizer

        cfg, w, env = self.cfg, self.cfg.warmup, self.env
        tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        examples = self._examples(tokenizer, run)
        out = self.scratch / self.partition.prefix / STAGE / attempt_prefix.rsplit("=", 1)[-1]
        shutil.rmtree(out, ignore_errors=True)
        if not w.steps:
            if env.rank == 0:
                log.info("warm-up: 0 steps configured; the base model is passed on unchanged")
                stats.bytes_out = ckpt.upload_dir(self.lake.storage, self.model_dir, f"{attempt_prefix}/hf")
                stats.metrics.update({"steps": 0, "examples": len(examples), "export":
                                      self.lake.storage.uri(f"{attempt_prefix}/hf")})
            dist.barrier()
            return
        if not examples:
            raise ValueError(f"warm-up: no task of {self.tasks_source} has a reference solution that passes its "
                             f"tests (see the drop reasons); give references, or set stages.rl.warmup.steps: 0")
        per_rank, rest = divmod(w.batch_size, env.world_size)
        if rest or per_rank % w.micro_batch_size:
            raise ValueError(f"warmup.batch_size {w.batch_size} does not split into {env.world_size} rank(s) x micro "
                             f"batches of {w.micro_batch_size}")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        actor = Actor(self.model_dir, cfg.actor, micro_batch_size=w.micro_batch_size,
                      grad_accum_steps=per_rank // w.micro_batch_size, world_size=env.world_size, device=self.device)
        sampler = PromptSampler(len(examples), seed=cfg.seed, shuffle=True)
        writer = None
        if env.rank == 0:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(out / "tensorboard"))
            log.info("warm-up of %s: %d examples, %d steps of %d, lr %.1e", self.model_uri, len(examples), w.steps,
                     w.batch_size, w.lr)
        losses, tokens, t_run = [], 0, time.perf_counter()
        for step in range(w.steps):
            batch = [examples[i] for i in sampler.take(w.batch_size)]
            total = float(sum(len(t.response_ids) for t in batch))
            mine = batch[env.rank:: env.world_size]
            loss_sum = 0.0
            for i in range(0, len(mine), w.micro_batch_size):
                b = collate(mine[i: i + w.micro_batch_size], pad, self.device)
                logp, _ = actor.forward(b, 1.0)
                loss = -(logp * b["loss_mask"]).sum() / total * env.world_size
                actor.backward(loss)
                loss_sum += float(loss.detach()) / env.world_size
                tokens += int(b["attention_mask"].sum())
            lr = w.lr * min(1.0, (step + 1) / w.lr_warmup_steps) if w.lr_warmup_steps else w.lr
            actor.step(lr)
            t = torch.tensor([loss_sum], dtype=torch.float64)
            dist.all_reduce(t)
            losses.append(float(t.item()))
            if writer is not None:
                writer.add_scalar("warmup/loss", losses[-1], step + 1)
                writer.add_scalar("warmup/lr", lr, step + 1)
                if (step + 1) % 10 == 0 or step + 1 == w.steps:
                    log.info("warm-up step %d/%d loss %.4f", step + 1, w.steps, losses[-1])
        seconds = time.perf_counter() - t_run
        state = actor.weights()
        if env.rank == 0:
            export_policy(state, self.model_dir, out / "hf", cfg.export_dtype)
            stats.bytes_out = ckpt.upload_dir(self.lake.storage, out / "hf", f"{attempt_prefix}/hf")
            writer.close()
            ckpt.upload_dir(self.lake.storage, out / "tensorboard", f"{attempt_prefix}/tensorboard")
            stats.metrics.update({
                "steps": w.steps, "examples": len(examples), "loss_first": losses[0], "loss_last": losses[-1],
                "loss_curve": [round(x, 4) for x in losses], "epochs": w.steps * w.batch_size / len(examples),
                "tokens_per_s": round(tokens * env.world_size / seconds, 1), "model": self.model_uri,
                "export": self.lake.storage.uri(f"{attempt_prefix}/hf"),
                "xcom": {"examples": len(examples), "loss_first": losses[0], "loss_last": losses[-1]},
            })
            shutil.rmtree(out, ignore_errors=True)
        dist.barrier()
