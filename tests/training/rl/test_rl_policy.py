"""The policy on its engines: a positive advantage makes a response likelier and a negative one rarer; DeepSpeed
(ZeRO-2, gloo, as production runs it) and plain torch take the same update from the same micro batches; the
log-probabilities the update uses are those of the sampled tokens at the rollout temperature; the export loads."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from training.pretrain.train import DistEnv, init_distributed
from training.rl.config import ActorConfig
from training.rl.loss import policy_loss
from training.rl.policy import Actor, Trajectory, collate, export_policy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluate"))
from evaluate_fixtures import build_model  # noqa: E402

pytestmark = pytest.mark.gpu_env
CPU = torch.device("cpu")


DIST_ENV = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A one-rank process group in this process (the engines need one; it stays for the session, as DeepSpeed's
    communication backend cannot be set up twice). The variables init_distributed set are put back after the
    module: a stage subprocess started later must not inherit the port this process's group holds."""
    saved = {k: os.environ.get(k) for k in DIST_ENV}
    init_distributed(DistEnv(), CPU)
    yield build_model(tmp_path_factory.mktemp("rl-policy") / "base", vocab_size=600)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def trajectories() -> list[Trajectory]:
    return [Trajectory([5, 6, 7], [20, 21, 22, 23], 1.0), Trajectory([5, 6, 7], [30, 31], -1.0),
            Trajectory([8, 9], [20, 21, 22], 0.5), Trajectory([8, 9], [40], -0.5)]


def update(actor: Actor, trajs: list[Trajectory], micro: int, lr: float) -> None:
    """One on-policy update as the trainer runs it: micro batches, token-mean over the whole mini batch."""
    total = float(sum(len(t.response_ids) for t in trajs))
    for i in range(0, len(trajs), micro):
        b = collate(trajs[i:i + micro], 0, CPU)
        logp, _ = actor.forward(b, 1.0)
        loss, _ = policy_loss(logp.detach(), logp, b["advantages"], b["loss_mask"], num_tokens=total)
        actor.backward(loss)
    actor.step(lr)


def response_logp(actor: Actor, trajs: list[Trajectory]) -> list[float]:
    with torch.no_grad():
        b = collate(trajs, 0, CPU)
        logp, _ = actor.forward(b, 1.0)
        return (logp * b["token_mask"]).sum(dim=1).tolist()


@pytest.mark.parametrize("strategy", ["torch", "deepspeed"])
def test_the_update_follows_the_advantages(model_dir, strategy):
    cfg = ActorConfig(strategy=strategy, zero_stage=2, optim={"weight_decay": 0.0, "grad_clip": 0.0})
    actor = Actor(model_dir, cfg, micro_batch_size=2, grad_accum_steps=2, world_size=1, device=CPU)
    trajs = trajectories()
    before = response_logp(actor, trajs)
    for _ in range(3):
        update(actor, trajs, micro=2, lr=1e-3)
    after = response_logp(actor, trajs)
    assert after[0] > before[0] and after[2] > before[2]  # positive advantages: likelier
    assert after[1] < before[1] and after[3] < before[3]  # negative: rarer


def test_deepspeed_and_torch_take_the_same_step(model_dir):
    weights = {}
    for strategy in ("torch", "deepspeed"):
        cfg = ActorConfig(strategy=strategy, zero_stage=2, optim={"weight_decay": 0.0, "grad_clip": 1.0})
        actor = Actor(model_dir, cfg, micro_batch_size=2, grad_accum_steps=2, world_size=1, device=CPU)
        update(actor, trajectories(), micro=2, lr=1e-3)
        weights[strategy] = actor.weights()
    assert weights["torch"].keys() == weights["deepspeed"].keys()
    for name, value in weights["torch"].items():
        torch.testing.assert_close(weights["deepspeed"][name], value, rtol=1e-4, atol=1e-6, msg=name)
    start = Actor(model_dir, ActorConfig(strategy="torch"), micro_batch_size=2, grad_accum_steps=2, world_size=1,
                  device=CPU).weights()
    assert any(not torch.equal(start[k], weights["torch"][k]) for k in start)  # it did move


def test_log_probs_are_the_sampled_tokens_at_the_rollout_temperature(model_dir):
    from transformers import AutoModelForCausalLM

    actor = Actor(model_dir, ActorConfig(strategy="torch", logprob_chunk=3), micro_batch_size=4,
                  grad_accum_steps=1, world_size=1, device=CPU)
    lm = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    trajs = trajectories()
    b = collate(trajs, 0, CPU)
    with torch.no_grad():
        logp, entropy = actor.forward(b, 0.7)
        for row, t in enumerate(trajs):
            ids = torch.tensor([t.prompt_ids + t.response_ids])
            logits = lm(ids).logits[0, len(t.prompt_ids) - 1: -1] / 0.7
            expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(t.response_ids)[:, None]).squeeze(-1)
            torch.testing.assert_close(logp[row, : len(t.response_ids)], expected, rtol=1e-4, atol=1e-5)
            probs = torch.softmax(logits, -1)
            torch.testing.assert_close(entropy[row, : len(t.response_ids)],
                                       -(probs * probs.log()).sum(-1), rtol=1e-4, atol=1e-5)
            assert logp[row, len(t.response_ids):].abs().sum() == 0


def test_the_export_is_a_model_transformers_loads(model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    actor = Actor(model_dir, ActorConfig(strategy="torch"), micro_batch_size=2, grad_accum_steps=2, world_size=1,
                  device=CPU)
    update(actor, trajectories(), micro=2, lr=1e-2)
    out = export_policy(actor.weights(), model_dir, tmp_path / "hf", "float32")
    lm = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    for name, value in actor.weights().items():
        assert torch.equal(lm.state_dict()[name], value), name
    assert AutoTokenizer.from_pretrained(out).vocab_size == AutoTokenizer.from_pretrained(model_dir).vocab_size
