"""The pretraining loop: packed shards -> DeepSpeed (or torch) steps -> checkpoints, logs and an HF export.

One process per rank; the DeepSpeed launcher (local) or torchrun (k8s) sets RANK/WORLD_SIZE/LOCAL_RANK.
Rank 0 owns the stage attempt (:class:`~lake.stage.StageRun`) and commits it when training and export are
done; other ranks learn the attempt from it and write their checkpoint shards there. Per step the loss
(mean over micro batches and ranks), learning rate, gradient norm and tokens are recorded; every
``log_every`` steps tokens/s and MFU go to the log and TensorBoard; every ``checkpoint_every`` steps the
engine state, the data position and the step log so far go to the lake, so a killed run resumes from the
newest complete checkpoint and reproduces the curve an uninterrupted run would have drawn.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from lake import tokens
from lake.progress import Progress
from lake.stage import Lake, Partition, StageRun
from lake.timing import fixed_cost
from lake.token_shards import TokenShards, read_index, tokenizer_location
from training.pretrain import base_model
from training.pretrain import checkpoint as ckpt
from training.pretrain.config import PretrainConfig
from training.pretrain.data import MixtureLoader, effective_mixture
from training.pretrain.engine import make_engine
from training.pretrain.export import export_hf
from training.pretrain.presets import build_model, flops_per_token, parameter_counts, preset
from training.pretrain.schedule import Schedule

log = logging.getLogger(__name__)
STAGE = "pretrain"
METRICS = "metrics"


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environ(cls) -> DistEnv:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(env: DistEnv, device: torch.device) -> None:
    """One process group for every world size (gloo on CPU, nccl on GPUs), so the loop has one code path."""
    # The rank variables first, even when a group exists: DeepSpeed's engine reads LOCAL_RANK from the environment
    # at every initialize (a process whose group outlived a cleared environment, e.g. one test after another).
    os.environ.setdefault("RANK", str(env.rank))
    os.environ.setdefault("WORLD_SIZE", str(env.world_size))
    os.environ.setdefault("LOCAL_RANK", str(env.local_rank))
    if dist.is_initialized():
        return
    if env.world_size == 1 and "MASTER_PORT" not in os.environ:
        from training.pretrain.stage import free_port

        os.environ["MASTER_PORT"] = str(free_port())
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    backend = "nccl" if device.type == "cuda" else "gloo"
    import deepspeed

    if device.type == "cpu":
        # On CPU DeepSpeed's torch backend JIT-builds a shared-memory all-reduce op (torch_extensions) before it
        # joins the group. The build costs a minute on a fresh machine, and a process killed during it (a
        # SIGTERM'd task, a timeout) leaves torch's build lock behind, so every later run waits on that lock
        # forever. Gloo is the declared CPU backend and the models trained on CPU are small: skip the op.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False)


def measure_matmul_flops(device: torch.device, dtype: torch.dtype, *, size: int | None = None,
                         repeats: int = 5, shape: tuple[int, int, int] | None = None) -> float:
    """Best observed dense matmul FLOP/s of this device: the denominator of MFU when none is configured.

    Square ``size`` matrices by default; ``shape`` ``(n, k, m)`` times ``[n x k] @ [k x m]`` instead (a model's
    own matmul). The first call is a warm-up and is not counted.
    """
    n = size or (8192 if device.type == "cuda" else 1024)
    n, k, m = shape or (n, n, n)
    a = torch.randn(n, k, device=device, dtype=dtype)
    b = torch.randn(k, m, device=device, dtype=dtype)
    best = float("inf")
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            best = min(best, time.perf_counter() - t0)
    return 2 * n * k * m / best


class StepLog:
    """The per-step records since the last checkpoint; flushed to the lake as one JSONL segment per checkpoint."""

    def __init__(self):
        self.pending: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> None:
        self.pending.append(record)

    def flush(self, storage, attempt_prefix: str, step: int) -> None:
        if self.pending:
            body = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.pending)
            storage.write_bytes(f"{attempt_prefix}/{METRICS}/steps-{step:08d}.jsonl", body.encode())
        self.pending = []


def drop_segments_after(storage, attempt_prefix: str, step: int) -> None:
    """Forget step-log segments written after the checkpoint a run resumes from (they will be redone)."""
    for key in storage.list(f"{attempt_prefix}/{METRICS}"):
        name = key.rsplit("/", 1)[-1]
        if name.startswith("steps-") and int(name[6:14]) > step:
            storage.delete_prefix(key)


def read_step_log(lake: Lake, snapshot: str | Partition, stage: str = STAGE) -> list[dict[str, Any]]:
    """Every step record of a committed run, in step order."""
    records = []
    for key in lake.dataset_keys(snapshot, stage, METRICS):
        records += [json.loads(line) for line in lake.storage.read_bytes(key).decode().splitlines() if line]
    return sorted(records, key=lambda r: r["step"])


def open_sources(lake: Lake, snapshot: str | Partition, cfg: PretrainConfig) -> tuple[dict, dict[str, TokenShards]]:
    index = read_index(lake, snapshot, cfg.input)
    wanted = sorted({s for phase in cfg.phases for s, w in phase.mixture.items() if w > 0})
    return index, {s: TokenShards(lake, snapshot, s, stage=cfg.input) for s in wanted}


def check_fim_rate(phase, sources: dict[str, TokenShards]) -> None:
    """The phase's FIM rate must be the one its shards were built with (FIM happens in dataset_build).

    Sources the build leaves without FIM (rate 0: commit samples are input -> target pairs) are exempt, and so
    are indexes that do not record a rate.
    """
    if phase.fim_rate is None:
        return
    for name, source in sorted(sources.items()):
        built = getattr(source, "meta", {}).get("fim_rate")
        if built and abs(built - phase.fim_rate) > 1e-9:
            raise ValueError(f"phase {phase.name!r} expects FIM rate {phase.fim_rate} but source {name} was built "
                             f"with {built}: rebuild the shards or change the phase")


def resolve_schedule(cfg: PretrainConfig, sources: dict[str, TokenShards], world_size: int, stats) -> Schedule:
    """Phases with their seq_len and effective mixture checked against the shards."""
    sizes = {name: len(src) for name, src in sources.items()}
    seq_lens, phases = {}, []
    for phase in cfg.phases:
        mixture, empty = effective_mixture(phase.mixture, sizes)
        for source in empty:
            log.warning("phase %s: source %s has no rows; its weight goes to the others", phase.name, source)
            stats.drop(f"empty_source_{source}")
        lens = {sources[s].seq_len for s in mixture}
        if len(lens) != 1:
            raise ValueError(f"phase {phase.name!r} mixes sources of different seq_len "
                             f"{ {s: sources[s].seq_len for s in mixture} }: one phase trains one context length")
        seq_len = lens.pop()
        if phase.seq_len is not None and phase.seq_len != seq_len:
            raise ValueError(f"phase {phase.name!r} asks for seq_len {phase.seq_len} but the shards of "
                             f"{sorted(mixture)} in stage {cfg.input!r} have seq_len {seq_len}")
        check_fim_rate(phase, {s: sources[s] for s in mixture})
        seq_lens[phase.name] = seq_len
        phases.append(phase.model_copy(update={"mixture": mixture}))
    return Schedule.resolve(phases, warmup_steps=cfg.warmup_steps, global_batch=cfg.global_batch(world_size),
                            seq_lens=seq_lens, token_budget=cfg.token_budget)


class Trainer:
    """One rank of one pretraining run on one release (``release``: its name or its Partition)."""

    def __init__(self, lake: Lake, release: str | Partition, cfg: PretrainConfig, *, fresh: bool = False):
        self.lake = lake
        self.partition = Partition.release(release) if isinstance(release, str) else release
        self.cfg = cfg
        self.base: base_model.BaseInit | None = None
        self.fresh = fresh
        self.env = DistEnv.from_environ()
        self.device = (torch.device("cuda", self.env.local_rank) if torch.cuda.is_available()
                       else torch.device("cpu"))
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.scratch = Path(cfg.scratch_dir or Path(tempfile.gettempdir()) / "seedcoder-pretrain")

    # -- distributed helpers ----------------------------------------------------------------------
    def _broadcast(self, value: Any) -> Any:
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _mean(self, value: float) -> float:
        t = torch.tensor([value], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return float(t.item()) / self.env.world_size

    @property
    def is_first_on_node(self) -> bool:
        return self.env.local_rank == 0

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any] | None:
        """Train, export, and (rank 0) commit; returns the committed stats on rank 0."""
        self.lake.require(self.partition, self.cfg.input)
        self._tokenizer_dir()  # fail now, not after training, when the export would have no tokenizer
        if self.cfg.init != "scratch":
            self.base = base_model.resolve(self.lake, self.partition, self.cfg.init)
            if self.base is not None:
                self.cfg = self.cfg.continued()  # a continued run follows its own schedule from the base's weights
        with fixed_cost("distributed_init"):
            init_distributed(self.env, self.device)
        if self.env.rank == 0:
            with StageRun(self.lake, self.partition, STAGE, resume=not self.fresh,
                          params=self.cfg.model_dump(mode="json")) as run:
                self._broadcast(run.attempt_prefix)
                self._train(run.attempt_prefix, run.stats)
            return run.stats.to_dict()
        self._train(self._broadcast(None), None)
        return None

    def _train(self, attempt_prefix: str, stats) -> None:
        cfg, env, storage = self.cfg, self.env, self.lake.storage
        index, sources = open_sources(self.lake, self.partition, cfg)
        schedule = resolve_schedule(cfg, sources, env.world_size, stats or _NullStats())
        spec = preset(cfg.preset).with_vocab(int(index["vocab_size"]))
        for phase in schedule.phases:
            if phase.seq_len > spec.max_position_embeddings:
                raise ValueError(f"phase {phase.name} trains at seq_len {phase.seq_len}, beyond the "
                                 f"{spec.max_position_embeddings} positions of preset {spec.name}")
        with fixed_cost("model_init"):
            model = build_model(spec, seed=cfg.seed, bos_id=self._bos_id(index), eos_id=index["eos_id"],
                                pad_id=index["pad_id"], attn_implementation=cfg.attn_implementation)
            if cfg.activation_checkpointing:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            engine = make_engine(model, cfg, env.world_size, self.device)
        loader = MixtureLoader(sources, seed=cfg.seed, micro_batch_size=cfg.micro_batch_size,
                               grad_accum_steps=cfg.grad_accum_steps, world_size=env.world_size, rank=env.rank)
        architecture = spec.architecture()
        if self.base is not None:
            loaded = base_model.load_weights(model, self.base.directory)
            if env.rank == 0:
                log.info("continued pretraining: %d tensors from base release %s (%s)", loaded, self.base.release,
                         self.base.uri)
        local_ckpt = self.scratch / self.partition.prefix / attempt_prefix.rsplit("=", 1)[-1] / "checkpoints"
        start, resumed_loss = self._resume(attempt_prefix, engine, loader, architecture, local_ckpt)
        losses: list[float] = []
        total = schedule.total_steps
        if env.rank == 0:
            counts = parameter_counts(spec)
            log.info("pretrain %s: preset %s (%.1fM parameters, %.1fM non-embedding), engine %s ZeRO-%d, "
                     "world %d, global batch %d, steps %d..%d; schedule %s", self.partition, spec.name,
                     counts["total"] / 1e6, counts["non_embedding"] / 1e6, cfg.engine, cfg.zero_stage,
                     env.world_size, cfg.global_batch(env.world_size), start, total, schedule.describe())
        with fixed_cost("peak_flops_probe"):
            peak = cfg.peak_flops or measure_matmul_flops(self.device, torch.bfloat16 if cfg.bf16 else torch.float32)
        writer = self._tensorboard(start) if env.rank == 0 else None
        steplog = StepLog()
        window_t, window_tokens, window_flops = time.perf_counter(), 0, 0.0
        run_t, run_tokens, run_flops = time.perf_counter(), 0, 0.0
        last_ckpt = start
        progress = Progress("pretrain", total, unit="steps") if env.rank == 0 else None
        if progress is not None:
            progress.skip(start)
        for step in range(start, total):
            phase = schedule.phase_at(step)
            lr = schedule.lr_at(step)
            batches = loader.step_batches(step, phase.mixture)
            micro_losses = [engine.forward_backward(b) for b in batches]
            grad_norm = engine.step(lr)
            loss = self._mean(float(torch.stack(micro_losses).mean()))
            tokens = sum(b.input_ids.size for b in batches) * env.world_size
            loss_tokens = int(self._mean(sum(b.loss_tokens for b in batches)) * env.world_size)
            flops = tokens * flops_per_token(spec, phase.seq_len)
            window_tokens += tokens
            window_flops += flops
            run_tokens += tokens
            run_flops += flops
            record = {"step": step + 1, "phase": phase.name, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                      "tokens": tokens, "loss_tokens": loss_tokens}
            losses.append(loss)
            steplog.add(record)
            if (step + 1) % cfg.log_every == 0 or step + 1 == total:
                seconds = time.perf_counter() - window_t
                tps = window_tokens / seconds
                mfu = window_flops / seconds / (peak * env.world_size)
                if env.rank == 0:
                    log.info("step %d/%d [%s] loss %.4f lr %.2e grad_norm %s tokens/s %.0f MFU %.2f%%", step + 1,
                             total, phase.name, loss, lr, f"{grad_norm:.3f}" if grad_norm is not None else "-",
                             tps, 100 * mfu)
                    for name, value in (("loss", loss), ("lr", lr), ("tokens_per_s", tps), ("mfu", mfu)):
                        writer.add_scalar(f"train/{name}", value, step + 1)
                    if grad_norm is not None:
                        writer.add_scalar("train/grad_norm", grad_norm, step + 1)
                window_t, window_tokens, window_flops = time.perf_counter(), 0, 0.0
            if progress is not None:
                progress.advance()
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == total:
                self._save(attempt_prefix, engine, loader, architecture, local_ckpt, step + 1, loss, steplog,
                           writer)
                last_ckpt = step + 1
        seconds = time.perf_counter() - run_t
        if progress is not None:
            progress.finish()
        self._export(attempt_prefix, engine, spec, index, stats, schedule)
        if stats is not None:
            steplog.flush(self.lake.storage, attempt_prefix, total)
            stats.records_in = sum(loader.cursors.values())
            stats.records_out = total
            stats.metrics.update({
                "preset": spec.name, "engine": cfg.engine, "zero_stage": cfg.zero_stage, "world_size": env.world_size,
                "global_batch": cfg.global_batch(env.world_size), "steps": total, "resumed_from_step": start,
                "last_checkpoint_step": last_ckpt, "parameters": parameter_counts(spec),
                "loss_first": self._first_loss(attempt_prefix), "loss_last": losses[-1] if losses else resumed_loss,
                "tokens_this_run": run_tokens, "seconds_training": round(seconds, 3),
                "tokens_per_s": round(run_tokens / seconds, 1) if seconds > 0 and run_tokens else None,
                "mfu": run_flops / seconds / (peak * env.world_size) if seconds > 0 and run_flops else None,
                "peak_flops_per_device": peak, "data_cursors": loader.cursors, "schedule": schedule.describe(),
                "init": "base_release" if self.base else "scratch",
                "base_release": self.base.release if self.base else None,
                "base_model": self.base.uri if self.base else None,
            })
        if writer is not None:
            writer.close()
            ckpt.upload_dir(storage, Path(writer.log_dir), f"{attempt_prefix}/tensorboard")
        dist.barrier()

    # -- checkpoints ------------------------------------------------------------------------------
    def _resume(self, attempt_prefix: str, engine, loader: MixtureLoader, architecture: dict,
                local: Path) -> tuple[int, float | None]:
        storage = self.lake.storage
        steps = ckpt.complete_steps(storage, attempt_prefix)
        if not steps:
            if self.env.rank == 0:
                drop_segments_after(storage, attempt_prefix, 0)
            dist.barrier()
            return 0, None
        step = steps[-1]
        state = ckpt.read_state(storage, attempt_prefix, step)
        where = storage.uri(ckpt.checkpoint_prefix(attempt_prefix, step))
        ckpt.check_architecture(state["architecture"], architecture, where)
        if state["engine"] != self.cfg.engine or state["world_size"] != self.env.world_size:
            raise ValueError(f"checkpoint {where} was saved by engine {state['engine']} on {state['world_size']} "
                             f"ranks; this run uses {self.cfg.engine} on {self.env.world_size}")
        if self.is_first_on_node:
            ckpt.download_prefix(storage, ckpt.checkpoint_prefix(attempt_prefix, step), local / ckpt.tag(step),
                                 skip=(ckpt.STATE,))
        dist.barrier()
        engine.load(local, ckpt.tag(step))
        loader.load_state_dict(state["data"])
        if self.env.rank == 0:
            drop_segments_after(storage, attempt_prefix, step)
            log.info("resumed from %s (step %d, loss %.4f)", where, step, state["loss"])
        dist.barrier()
        return step, state["loss"]

    def _save(self, attempt_prefix: str, engine, loader: MixtureLoader, architecture: dict, local: Path,
              step: int, loss: float, steplog: StepLog, writer) -> None:
        storage = self.lake.storage
        t0 = time.perf_counter()
        engine.save(local, ckpt.tag(step))
        dist.barrier()
        if self.is_first_on_node:
            ckpt.upload_dir(storage, local / ckpt.tag(step), ckpt.checkpoint_prefix(attempt_prefix, step))
        dist.barrier()
        if self.env.rank == 0:
            steplog.flush(storage, attempt_prefix, step)
            if writer is not None:
                writer.flush()
                ckpt.upload_dir(storage, Path(writer.log_dir), f"{attempt_prefix}/tensorboard")
            ckpt.write_state(storage, attempt_prefix, step, {
                "step": step, "data": loader.state_dict(), "architecture": architecture,
                "engine": self.cfg.engine, "world_size": self.env.world_size,
                "config": self.cfg.model_dump(mode="json"), "loss": loss,
            })
            removed = ckpt.prune(storage, attempt_prefix, self.cfg.keep_checkpoints)
            log.info("checkpoint step %d -> %s (%.1fs)%s", step,
                     storage.uri(ckpt.checkpoint_prefix(attempt_prefix, step)), time.perf_counter() - t0,
                     f"; pruned {removed}" if removed else "")
        else:
            steplog.pending = []
        for old in local.glob("step-*"):
            if old.name != ckpt.tag(step):
                _remove_tree(old)
        dist.barrier()

    def _first_loss(self, attempt_prefix: str) -> float | None:
        keys = sorted(self.lake.storage.list(f"{attempt_prefix}/{METRICS}"))
        if not keys:
            return None
        first = self.lake.storage.read_bytes(keys[0]).decode().splitlines()[0]
        return json.loads(first)["loss"]

    def _tensorboard(self, start: int):
        from torch.utils.tensorboard import SummaryWriter

        directory = self.scratch / self.partition.prefix / "tensorboard" / f"rank0-start{start:08d}-{os.getpid()}"
        # purge_step hides events a killed run wrote after the checkpoint this run resumes from.
        return SummaryWriter(log_dir=str(directory), purge_step=start or None)

    def _tokenizer_dir(self) -> Path:
        """The HF tokenizer files the shards were built with (named by the shard index)."""
        part, stage = tokenizer_location(read_index(self.lake, self.partition, self.cfg.input))
        return tokens.local_dir(self.lake, part, stage, cache_dir=self.scratch / "tokenizers")

    @staticmethod
    def _bos_id(index: dict) -> int:
        """The tokenizer's bos (id 0 as in the released config) even when the build does not prepend it."""
        bos = index.get("bos_id")
        return tokens.SPECIAL_IDS[tokens.BOS] if bos is None else int(bos)

    # -- export -----------------------------------------------------------------------------------
    def _export(self, attempt_prefix: str, engine, spec, index: dict, stats, schedule: Schedule) -> None:
        state = engine.full_state_dict()
        if self.env.rank != 0:
            return
        tokenizer_dir = self._tokenizer_dir()
        out = self.scratch / self.partition.prefix / "export" / attempt_prefix.rsplit("=", 1)[-1]
        _remove_tree(out)
        export_hf(state, spec, bos_id=self._bos_id(index), eos_id=index["eos_id"], pad_id=index["pad_id"],
                  tokenizer_dir=tokenizer_dir, out_dir=out, dtype=self.cfg.export_dtype,
                  max_length=max(p.seq_len for p in schedule.phases))
        size = ckpt.upload_dir(self.lake.storage, out, f"{attempt_prefix}/hf")
        stats.bytes_out = size
        stats.metrics["export"] = self.lake.storage.uri(f"{attempt_prefix}/hf")
        _remove_tree(out)


class _NullStats:
    def drop(self, reason: str, count: int = 1) -> None:
        pass


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
