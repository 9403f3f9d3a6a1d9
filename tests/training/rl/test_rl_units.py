"""The RL algorithm's pieces on hand-computed numbers: the loss (aggregation, asymmetric and dual clipping, masking
of truncated responses, micro-batch normalisation), GRPO's advantages, dynamic sampling and its bound, rewards,
answer extraction, the task format and the curriculum's selection."""

from __future__ import annotations

import json
import math

import pytest
import torch

from training.rl.advantages import grpo_advantages
from training.rl.config import RLConfig
from training.rl.curriculum import select
from training.rl.dynamic_sampling import BatchFiller, DynamicSamplingExhausted, Group, drop_reason
from training.rl.extract import extract_code
from training.rl.loss import agg_loss, policy_loss
from training.rl.policy import Trajectory, collate
from training.rl.rewards import REWARDS, combine, overlong_penalty
from training.rl.sampler import PromptSampler
from training.rl.tasks import TaskFormatError, easy_tasks, load_tasks, mbpp_tasks, parse_jsonl


# -- the loss ------------------------------------------------------------------------------------------------
def on_policy(advantages, lengths):
    """Log-probs equal to the old ones (ratio 1: the per-token loss is -A) for responses of these lengths."""
    width = max(lengths)
    mask = torch.tensor([[1.0] * n + [0.0] * (width - n) for n in lengths])
    logp = torch.zeros(len(lengths), width, requires_grad=True)
    return logp, mask, torch.tensor(advantages)


def test_token_mean_weighs_every_token_and_seq_mean_every_response():
    # A long good response (3 tokens, A=+1) and a short bad one (1 token, A=-1).
    logp, mask, adv = on_policy([1.0, -1.0], [3, 1])
    token, _ = policy_loss(logp.detach(), logp, adv, mask, loss_agg_mode="token-mean")
    seq, _ = policy_loss(logp.detach(), logp, adv, mask, loss_agg_mode="seq-mean-token-mean")
    seq_sum, _ = policy_loss(logp.detach(), logp, adv, mask, loss_agg_mode="seq-mean-token-sum")
    norm, _ = policy_loss(logp.detach(), logp, adv, mask, loss_agg_mode="seq-mean-token-sum-norm", norm_constant=8)
    assert float(token) == pytest.approx((-1 * 3 + 1 * 1) / 4)        # -0.5: 4 tokens
    assert float(seq) == pytest.approx((-1 + 1) / 2)                  # 0: each response's mean, then the mean
    assert float(seq_sum) == pytest.approx((-3 + 1) / 2)              # -1: sums, averaged over 2 responses
    assert float(norm) == pytest.approx((-3 + 1) / 8)                 # Dr. GRPO: a constant divisor


def test_token_mean_gradient_is_the_same_for_every_token():
    logp, mask, adv = on_policy([1.0, 1.0], [3, 1])
    loss, _ = policy_loss(logp.detach(), logp, adv, mask, loss_agg_mode="token-mean")
    loss.backward()
    assert logp.grad.flatten().tolist() == pytest.approx([-0.25, -0.25, -0.25, -0.25, 0.0, 0.0])
    logp.grad = None
    loss, _ = policy_loss(logp.detach(), logp, adv, mask, loss_agg_mode="seq-mean-token-mean")
    loss.backward()  # the short response's token weighs 3x each token of the long one
    assert logp.grad.flatten().tolist() == pytest.approx([-1 / 6, -1 / 6, -1 / 6, -0.5, 0.0, 0.0])


@pytest.mark.parametrize(("advantage", "ratio", "loss", "clipped"), [
    (1.0, 1.5, -1.28, True),    # A > 0: the upper bound is 1 + clip_ratio_high = 1.28 (clip-higher)
    (1.0, 1.25, -1.25, False),  # inside the higher bound (PPO's symmetric 0.2 would have clipped it)
    (1.0, 0.5, -0.5, False),    # A > 0 and ratio below 1 - low: the pessimistic (unclipped) term wins
    (-1.0, 0.7, 0.8, True),     # A < 0: the lower bound 1 - clip_ratio_low = 0.8
    (-1.0, 1.5, 1.5, False),    # A < 0 above 1 + high: unclipped (pessimistic)
    (-1.0, 4.0, 3.0, False),    # dual clip: at most clip_ratio_c * |A|
])
def test_asymmetric_and_dual_clipping(advantage, ratio, loss, clipped):
    old = torch.zeros(1, 1)
    new = torch.log(torch.tensor([[ratio]]))
    value, stats = policy_loss(old, new, torch.tensor([advantage]), torch.ones(1, 1), clip_ratio_low=0.2,
                               clip_ratio_high=0.28, clip_ratio_c=3.0)
    assert float(value) == pytest.approx(loss)
    assert stats["clipfrac"] == (1.0 if clipped else 0.0)
    assert stats["clipfrac_lower"] == (1.0 if advantage < 0 and ratio > 3.0 else 0.0)


def test_a_truncated_response_is_masked_out_of_the_loss():
    batch = collate([Trajectory([5, 6], [7, 8, 9], 1.0), Trajectory([5], [7, 8], -1.0, trains=False)], 0,
                    torch.device("cpu"))
    assert batch["loss_mask"].tolist() == [[True, True, True], [False, False, False]]
    assert batch["token_mask"].tolist() == [[True, True, True], [True, True, False]]
    logp = torch.zeros(2, 3, requires_grad=True)
    loss, _ = policy_loss(logp.detach(), logp, batch["advantages"], batch["loss_mask"])
    loss.backward()
    assert float(loss) == pytest.approx(-1.0)  # only the 3 tokens of the first response count
    assert logp.grad[1].abs().sum() == 0
    assert logp.grad[0].tolist() == pytest.approx([-1 / 3] * 3)


def test_micro_batches_normalised_by_the_whole_mini_batch_add_up_to_the_whole():
    torch.manual_seed(0)
    lengths = [5, 2, 7, 1]
    logp, mask, adv = on_policy([0.5, -1.0, 2.0, -0.3], lengths)
    new = logp.detach() + 0.1 * torch.randn(logp.shape)
    for mode, norm in (("token-mean", {"num_tokens": float(sum(lengths))}), ("seq-mean-token-mean", {"num_seqs": 4.0}),
                       ("seq-mean-token-sum", {"num_seqs": 4.0})):
        whole, _ = policy_loss(logp.detach(), new, adv, mask, loss_agg_mode=mode)
        parts = sum(float(policy_loss(logp.detach()[i:i + 2], new[i:i + 2], adv[i:i + 2], mask[i:i + 2],
                                      loss_agg_mode=mode, **norm)[0]) for i in (0, 2))
        assert parts == pytest.approx(float(whole), rel=1e-6), mode


def test_unknown_aggregation_is_refused():
    with pytest.raises(ValueError, match="unknown loss_agg_mode"):
        agg_loss(torch.zeros(1, 1), torch.ones(1, 1), "sum")


# -- advantages ----------------------------------------------------------------------------------------------
def test_grpo_advantages_by_hand():
    # Group a: rewards 1, 0, 0, 0: mean 0.25, sample std sqrt(0.75 / 3) = 0.5.
    adv = grpo_advantages([1, 0, 0, 0, 2, 4], ["a"] * 4 + ["b"] * 2, epsilon=0.0)
    assert adv.tolist() == pytest.approx([1.5, -0.5, -0.5, -0.5, -1 / math.sqrt(2), 1 / math.sqrt(2)])
    dr = grpo_advantages([1, 0, 0, 0, 2, 4], ["a"] * 4 + ["b"] * 2, norm_by_std=False)
    assert dr.tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25, -1.0, 1.0])
    assert grpo_advantages([0.5, 0.5], ["a", "a"]).tolist() == [0.0, 0.0]


def test_a_group_of_one_is_refused():
    with pytest.raises(ValueError, match="at least two"):
        grpo_advantages([1.0, 0.0, 1.0], ["a", "a", "b"])


# -- dynamic sampling ----------------------------------------------------------------------------------------
def group(rewards, passed=None, format_ok=None):
    passed = passed if passed is not None else [r > 0 for r in rewards]
    return Group(rewards=list(rewards), passed=list(passed), format_ok=format_ok or [True] * len(rewards))


def test_zero_spread_groups_are_dropped_and_more_batches_fill_the_step():
    filler = BatchFiller(target=3, max_num_gen_batches=5)
    batches = [[group([1, 1]), group([0, 1]), group([0, 0])],
               [group([0.5, 0.5]), group([1, 0])],
               [group([0, 1]), group([1, 0])]]
    made = 0
    while not filler.full:
        filler.check_budget()
        filler.add(batches[made])
        made += 1
    assert made == 3
    assert [g.rewards for g in filler.batch()] == [[0, 1], [1, 0], [0, 1]]
    assert filler.drops == {"zero_reward_spread": 3}
    assert filler.dropped_share == pytest.approx(3 / 7)


def test_the_regeneration_bound_ends_the_step_with_a_clear_error():
    filler = BatchFiller(target=2, max_num_gen_batches=3)
    with pytest.raises(DynamicSamplingExhausted, match="3 generation batches .* kept 0 of the 2 groups"):
        while not filler.full:
            filler.check_budget()
            filler.add([group([1, 1]), group([0, 0])])
    assert filler.gen_batches == 3
    unbounded = BatchFiller(target=1, max_num_gen_batches=0)
    for _ in range(50):
        unbounded.check_budget()
        unbounded.add([group([0, 0])])


def test_the_accuracy_metric_and_the_format_rule():
    # Rewards differ (format penalty) but accuracy does not: dropped under metric "acc" only.
    g = group([0.0, -0.5], passed=[False, False], format_ok=[True, False])
    assert drop_reason(g, filter_groups=True, metric="seq_reward", drop_format_errors=False) is None
    assert drop_reason(g, filter_groups=True, metric="acc", drop_format_errors=False) == "zero_accuracy_spread"
    # Every response correct or unreadable: the report drops it.
    h = group([1.0, -0.5, 1.0], passed=[True, False, True], format_ok=[True, False, True])
    assert drop_reason(h, filter_groups=True, metric="seq_reward", drop_format_errors=True) == "all_correct_but_format"
    assert drop_reason(h, filter_groups=True, metric="seq_reward", drop_format_errors=False) is None
    assert drop_reason(group([1, 0]), filter_groups=False, metric="seq_reward", drop_format_errors=True) is None


# -- rewards, extraction, tasks, curriculum, sampler, config --------------------------------------------------
def test_rewards_are_registered_plain_functions_and_combine_by_weight():
    assert {"all_pass", "pass_fraction", "format"} <= set(REWARDS)
    total, parts = combine({"pass_fraction": 1.0, "format": 0.5}, ["a", "b"], pass_fractions=[2 / 3, 0.0],
                           code=["x", None])
    assert total == pytest.approx([2 / 3, -0.5])
    assert parts["format"] == [0.0, -1.0]
    assert overlong_penalty([4, 6, 8], max_response_length=8, buffer_len=4, penalty_factor=2.0) == [0.0, -1.0, -2.0]
    with pytest.raises(ValueError, match="unknown reward"):
        combine({"nope": 1.0}, ["a"])


def test_config_refuses_a_run_without_a_correctness_reward_and_names_unknown_ones():
    with pytest.raises(ValueError, match="needs a correctness reward"):
        RLConfig(reward={"weights": {"format": 1.0}})
    with pytest.raises(ValueError, match="unknown reward functions"):
        RLConfig(reward={"weights": {"all_pass": 1.0, "style": 1.0}})
    with pytest.raises(ValueError, match="not a multiple"):
        RLConfig(data={"train_batch_size": 6}, actor={"ppo_mini_batch_size": 4})
    cfg = RLConfig()
    assert (cfg.actor.clip_ratio_low, cfg.actor.clip_ratio_high, cfg.actor.loss_agg_mode) == (0.2, 0.28, "token-mean")
    assert not cfg.actor.use_kl_loss and cfg.algorithm.overlong_filter and cfg.algorithm.filter_groups.enable
    assert [(r.steps, r.n, r.max_response_length) for r in map(cfg.round, (1, 2))] == [(90, 16, 16384),
                                                                                       (160, 32, 32768)]


def test_extraction_of_plain_and_fenced_answers():
    assert extract_code("def f():\n    return 1\n") == "def f():\n    return 1\n"
    assert extract_code("def f(:\n") is None
    assert extract_code("think\n```python\nx = 1\n```\nmore\n```python\ny = 2\n```", "fenced") == "y = 2\n"
    assert extract_code("```python\nx = 1\n", "fenced") is None


def test_task_sets_load_and_bad_lines_name_their_place(tmp_path):
    train = mbpp_tasks("train")
    assert len(train) == 464 and all(t.reference and t.tests for t in train)  # ids 511-974 (lake.evalsets)
    assert len(load_tasks("easy:5")) == 5 and load_tasks("mbpp:test")[0].task_id.startswith("mbpp/")
    path = tmp_path / "tasks.jsonl"
    good = {"task_id": "io/1", "prompt": "Read two numbers, print the sum.", "language": "cpp",
            "tests": [{"stdin": "1 2\n", "stdout": "3\n"}]}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "task_id": "io/2", "tests": ["assert x"]}) + "\n")
    with pytest.raises(TaskFormatError, match=r"tasks.jsonl:2: cpp tasks are judged on stdio cases"):
        load_tasks(str(path))
    with pytest.raises(TaskFormatError, match=r"x:2: task id 'io/1' repeats line 1"):
        parse_jsonl(json.dumps(good) + "\n" + json.dumps(good), "x")
    with pytest.raises(FileNotFoundError, match="not mbpp"):
        load_tasks("nowhere.jsonl")


def test_easy_tasks_are_deterministic_and_their_references_are_right():
    a, b = easy_tasks(30), easy_tasks(30)
    assert a == b
    for t in a:
        scope: dict = {}
        exec(t.reference, scope)  # noqa: S102 (our own generated one-liners)
        for test in t.tests:
            exec(test, scope)  # noqa: S102


def test_curriculum_drops_the_solved_and_the_unsolved_and_orders_the_rest():
    kept, decisions = select([0.0, 0.5, 1.0, 0.25, 0.9, 0.875, 0.5])
    assert kept == [5, 1, 6, 3]
    assert [d.dropped for d in decisions] == ["never_solved", None, "too_easy", None, "too_easy", None, None]
    assert select([0.0, 0.5], drop_unsolved=False, order="hardest_first")[0] == [0, 1]


def test_the_sampler_resumes_where_it_stopped():
    s = PromptSampler(7, seed=3, shuffle=True)
    first = s.take(10)
    state = s.state_dict()
    rest = s.take(9)
    t = PromptSampler(7, seed=3, shuffle=True)
    t.load_state_dict(state)
    assert t.take(9) == rest
    assert sorted(first[:7]) == list(range(7))
