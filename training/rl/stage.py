"""The RL stages of one run, each a committed stage of the run's own release partition (the ``rl`` DAG uses
``{base}.rl`` for the model of release ``base``):

    rl_warmup            the task set (``tasks``) and the warmed-up policy (``hf``)
    rl_curriculum_{k}    pass rates of every task under round k's starting policy (``estimates``) and the round's
                         task set, filtered and ordered (``tasks``)
    rl_round_{k}         k GRPO steps on it: the policy (``hf``), step metrics, sampled rollouts, checkpoints,
                         TensorBoard events

Round k starts from the policy of round k - 1 (round 1 from the warm-up's). Each step reads only committed
outputs of the steps before it, so each is re-runnable alone; a killed round resumes from its last checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from lake.config import PlatformConfig
from lake.stage import Lake, Partition, StageRun
from training.evaluate.stage import given_model, lake_model_dir
from training.rl.config import RLConfig
from training.rl.curriculum import select
from training.rl.extract import extract_code
from training.rl.judge import Judge
from training.rl.rollout import SamplingSpec, make_rollout, prompt_seed
from training.rl.tasks import RLTask, load_tasks
from training.rl.trainer import GRPOTrainer, round_stage
from training.rl.warmup import STAGE as WARMUP
from training.rl.warmup import Warmup, task_table
from training.sandbox import SandboxConfig

log = logging.getLogger(__name__)
STEPS = ("warmup", "curriculum", "grpo")


def curriculum_stage(number: int) -> str:
    return f"rl_curriculum_{number}"


def policy_stage(number: int) -> str:
    """The stage whose ``hf`` export round ``number`` starts from."""
    return WARMUP if number == 1 else round_stage(number - 1)


def committed_model(lake: Lake, partition: Partition, stage: str, dataset: str = "hf") -> tuple[Path, str]:
    """A local directory of a stage's committed Hugging Face export, and its URI."""
    commit = lake.require(partition, stage)
    if dataset not in commit.datasets:
        raise FileNotFoundError(f"stage {stage!r} of {partition} committed no {dataset!r} model "
                                f"(has {sorted(commit.datasets)})")
    prefix = f"{commit.prefix}/{dataset}"
    return lake_model_dir(lake, prefix), lake.storage.uri(prefix)


def base_model(lake: Lake, partition: Partition, cfg: RLConfig, model: str | None) -> tuple[Path, str]:
    """The warm-up's starting model: ``--model`` (a directory or a lake URI), else ``stages.rl.model``'s export."""
    if model:
        return given_model(lake, model)
    source = Partition.release(cfg.model.release) if cfg.model.release else partition
    return committed_model(lake, source, cfg.model.stage, cfg.model.dataset)


def read_tasks(lake: Lake, partition: Partition, stage: str) -> tuple[list[RLTask], str]:
    """The task set a stage committed, in its order, and its URI."""
    rows = sorted(lake.read_table(partition, stage, "tasks").to_pylist(), key=lambda r: r["order"])
    return [RLTask.from_row(r) for r in rows], lake.dataset_uri(partition, stage, "tasks")


# -- the three steps -----------------------------------------------------------------------------------------
def warmup(cfg: PlatformConfig, partition: Partition, *, model: str | None = None, tasks: str | None = None) -> dict | None:
    rl = cfg.stage("rl", RLConfig)
    lake = cfg.open_lake()
    source = tasks or rl.tasks
    task_set = load_tasks(source, lake)
    task_set = task_set[: rl.max_tasks] if rl.max_tasks else task_set
    model_dir, model_uri = base_model(lake, partition, rl, model)
    return Warmup(lake, partition, rl, cfg.stage("sandbox", SandboxConfig), model_dir=model_dir,
                  model_uri=model_uri, tasks=task_set, tasks_source=source).run()


def grpo(cfg: PlatformConfig, partition: Partition, number: int, *, fresh: bool = False) -> dict | None:
    rl = cfg.stage("rl", RLConfig)
    rl.round(number)
    lake = cfg.open_lake()
    policy_dir, policy_uri = committed_model(lake, partition, policy_stage(number))
    task_set, tasks_uri = read_tasks(lake, partition, curriculum_stage(number))
    return GRPOTrainer(lake, partition, rl, cfg.stage("sandbox", SandboxConfig), round_number=number,
                       policy_dir=policy_dir, policy_uri=policy_uri, tasks=task_set, tasks_uri=tasks_uri,
                       fresh=fresh).run()


def curriculum(cfg: PlatformConfig, partition: Partition, number: int, *, fresh: bool = False) -> dict:
    """Estimate every task's pass rate with round ``number``'s starting policy; commit the round's task set."""
    rl = cfg.stage("rl", RLConfig)
    r = rl.round(number)
    cur = rl.curriculum
    lake = cfg.open_lake()
    policy_dir, policy_uri = committed_model(lake, partition, policy_stage(number))
    all_tasks, tasks_uri = read_tasks(lake, partition, WARMUP)
    tasks = all_tasks[: cur.max_tasks] if cur.max_tasks else all_tasks
    samples = cur.samples_per_task or r.n
    fingerprint = {"policy": policy_uri, "tasks": tasks_uri, "round": r.model_dump(),
                   "curriculum": cur.model_dump(), "rollout": rl.rollout.model_dump(mode="json"),
                   "reward": rl.reward.model_dump(mode="json"), "seed": rl.seed}
    stage = curriculum_stage(number)
    with StageRun(lake, partition, stage, resume=not fresh, params=fingerprint) as run:
        if not cur.enable:
            log.info("%s: curriculum off; the round trains on all %d tasks in their order", stage, len(tasks))
            run.write_table("tasks", task_table(tasks), 0)
            run.stats.records_in = run.stats.records_out = len(tasks)
            run.stats.metrics.update({"enabled": False, "xcom": {"tasks": len(tasks)}})
            return run.stats.to_dict()
        rates = Estimator(run, rl, cfg.stage("sandbox", SandboxConfig), policy_dir, number, samples,
                          fingerprint).pass_rates(tasks)
        kept, decisions = select(rates, max_pass_rate=cur.max_pass_rate, drop_unsolved=cur.drop_unsolved,
                                 order=cur.order)
        reasons = Counter(d.dropped for d in decisions if d.dropped)
        for reason, count in sorted(reasons.items()):
            run.stats.drop(reason, count)
        run.write_table("estimates", pa.Table.from_pylist([
            {"task_id": tasks[d.task_index].task_id, "pass_rate": d.pass_rate, "samples": samples,
             "dropped": d.dropped} for d in decisions]), 0)
        if not kept:
            raise ValueError(f"{stage}: the curriculum kept no task of {len(tasks)} ({dict(reasons)}): the policy "
                             f"solves each of them more than {cur.max_pass_rate:.1%} of the time or never. Warm up "
                             f"longer, bring easier or harder tasks, or loosen stages.rl.curriculum")
        run.write_table("tasks", task_table([tasks[i] for i in kept], pass_rate=[rates[i] for i in kept]), 0)
        run.stats.records_in, run.stats.records_out = len(tasks), len(kept)
        mean = sum(rates) / len(rates)
        run.stats.metrics.update({
            "enabled": True, "policy": policy_uri, "samples_per_task": samples, "pass_rate_mean": mean,
            "solved_share": sum(x > 0 for x in rates) / len(rates),
            "pass_rate_histogram": dict(Counter(f"{min(int(x * 8), 7) / 8:.3f}" for x in rates)),
            "xcom": {"tasks": len(tasks), "kept": len(kept), "pass_rate_mean": round(mean, 4), **dict(reasons)}})
        log.info("%s: kept %d of %d tasks (mean pass rate %.3f; dropped %s)", stage, len(kept), len(tasks), mean,
                 dict(reasons))
        return run.stats.to_dict()


class Estimator:
    """Pass rates by sampling the policy, in resumable shards of ``curriculum.shard_tasks`` tasks."""

    def __init__(self, run: StageRun, rl: RLConfig, sandbox: SandboxConfig, policy_dir: Path, number: int,
                 samples: int, fingerprint: dict[str, Any]):
        self.run, self.rl, self.policy_dir, self.number, self.samples = run, rl, policy_dir, number, samples
        self.fingerprint = fingerprint
        r = rl.round(number)
        self.spec = SamplingSpec(n=samples, temperature=r.temperature, top_p=rl.rollout.top_p,
                                 top_k=rl.rollout.top_k, max_tokens=r.max_response_length, stop=rl.rollout.stop)
        self.judge = Judge(sandbox, rl.reward.limits, per_test=False, url=rl.reward.sandbox_url,
                           concurrency=rl.reward.sandbox_concurrency)
        self._rollout = None
        self._tokenizer = None

    def pass_rates(self, tasks: list[RLTask]) -> list[float]:
        size = self.rl.curriculum.shard_tasks
        rates: list[float] = []
        try:
            for start in range(0, len(tasks), size):
                rates += self._shard(start // size, start, tasks[start: start + size])
        finally:
            if self._rollout is not None:
                self._rollout.close()
        return rates

    def _shard(self, index: int, start: int, tasks: list[RLTask]) -> list[float]:
        name = f"estimate-{index:05d}"
        if self.run.shard_done(name):
            info = self.run.shard_info(name)
            if info.get("fingerprint") == self.fingerprint:
                log.info("%s: estimated in this attempt already, reusing it", name)
                return info["pass_rates"]
        if self._rollout is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.policy_dir)
            self._rollout = make_rollout(self.policy_dir, self.rl.rollout, seed=self.rl.seed, device=_device(),
                                         max_model_len=self.rl.data.max_prompt_length + self.spec.max_tokens)
        t0 = time.monotonic()
        prompts = [self._tokenizer.encode(t.prompt, add_special_tokens=False) for t in tasks]
        seeds = [prompt_seed(self.rl.seed, self.number, -1, start + i) for i in range(len(tasks))]
        completions = self._rollout.generate(prompts, self.spec, seeds)
        items = [(t, extract_code(c.text, self.rl.reward.answer_format, t.language))
                 for t, group in zip(tasks, completions, strict=True) for c in group]
        outcomes = iter(self.judge(items))
        rates = [sum(next(outcomes).passed for _ in group) / len(group) for group in completions]
        log.info("%s: %d tasks x %d samples in %.1fs, mean pass rate %.3f", name, len(tasks), self.samples,
                 time.monotonic() - t0, sum(rates) / len(rates))
        self.run.mark_shard_done(name, {"fingerprint": self.fingerprint, "pass_rates": rates})
        return rates


def _device():
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
