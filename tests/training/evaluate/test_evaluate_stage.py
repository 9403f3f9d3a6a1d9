"""The evaluate stage on a lake: the benchmarks' own solutions score 1.0 and wrong ones 0 through the real
sandbox; a killed run resumes without generating again what it finished; real vLLM and transformers engines
on a random-init tiny model produce a complete report (numbers near zero, bits per byte near log2 of the
vocabulary per token, as a model that knows nothing should)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from evaluate_fixtures import AnswerKey, build_model, commit_heldout, commit_model, config_file

from lake.config import load_config
from lake.stage import Lake, Partition, StageRun
from training.evaluate.config import EvaluateConfig
from training.evaluate.stage import STAGE, Evaluation, model_dir_of

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("bwrap"),
                                reason="judging needs the sandbox (root and bubblewrap)")
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_model(tmp_path_factory.mktemp("model") / "hf")


R1 = Partition.release("r1")


def evaluate(tmp_path: Path, model: Path, generator, release: Partition = R1, **section):
    cfg = load_config(config_file(tmp_path / "cfg.json", tmp_path / "lake", **section))
    lake = cfg.open_lake()
    if lake.commit_info(release, "pretrain") is None:
        commit_model(lake, release, model)
    ecfg = cfg.stage(STAGE, EvaluateConfig)
    model_dir, name = model_dir_of(lake, release, ecfg, None)
    with StageRun(lake, release, STAGE, resume=True) as run:
        return Evaluation(run, cfg, ecfg, model_dir, name, generator=generator).run_all(), lake


@pytest.mark.slow
def test_the_benchmarks_own_solutions_score_one(tmp_path, model):
    """Every HumanEval and MBPP (test split) task, and every FIM task: the canonical answer passes."""
    # MBPP 123 is a brute force of ~8 s on an idle core: a generous limit keeps a loaded machine from failing it
    results, lake = evaluate(tmp_path, model, AnswerKey(model, right=True), bpb={"enabled": False},
                             limits={"run_timeout": 300})
    failed = [(s["task_id"], s["verdict"], s["detail"][:300]) for s in lake.read_table(R1, STAGE, "samples").to_pylist()
              if not s["passed"]]
    assert not failed, failed  # which task, and the sandbox's verdict and detail
    assert {name: (b["tasks"], b["pass@1"]) for name, b in results["benchmarks"].items()} == \
        {"humaneval": (164, 1.0), "mbpp": (500, 1.0)}
    assert results["fim"]["single_line"] == {"tasks": 164, "exact_match": 1.0, "pass@1": 1.0}
    assert results["fim"]["multi_line"]["exact_match"] == 1.0 and results["fim"]["multi_line"]["pass@1"] == 1.0
    samples = lake.read_table(R1, STAGE, "samples").to_pylist()
    assert len(samples) == 664 and all(s["passed"] and s["verdict"] == "passed" for s in samples)


def test_a_wrong_model_scores_zero(tmp_path, model):
    results, lake = evaluate(tmp_path, model, AnswerKey(model, right=False), bpb={"enabled": False},
                             benchmarks=[{"name": "humaneval", "max_tasks": 25}, {"name": "mbpp", "max_tasks": 25}],
                             fim={"max_tasks": 25})
    assert [b["pass@1"] for b in results["benchmarks"].values()] == [0.0, 0.0]
    assert all(f["exact_match"] == 0.0 and f["pass@1"] == 0.0 for f in results["fim"].values())
    verdicts = results["benchmarks"]["humaneval"]["verdicts"]
    assert set(verdicts) <= {"wrong_answer", "runtime_error"} and sum(verdicts.values()) == 25
    report = lake.read_table(R1, STAGE, "samples")  # committed beside the model, every sample once
    assert report.num_rows == 50


def test_a_killed_run_resumes_without_generating_again(tmp_path, model):
    section = {"bpb": {"enabled": False}, "fim": {"enabled": False},
               "benchmarks": [{"name": "humaneval", "max_tasks": 8}, {"name": "mbpp", "max_tasks": 8}]}
    with pytest.raises(RuntimeError, match="killed"):
        evaluate(tmp_path, model, AnswerKey(model, right=True, fail_after=1), **section)
    lake = Lake.at(str(tmp_path / "lake"))
    assert lake.commit_info(R1, STAGE) is None  # nothing committed by the killed run
    again = AnswerKey(model, right=True)
    results, lake = evaluate(tmp_path, model, again, **section)
    assert again.prompts == 8  # only mbpp was generated this time
    assert results["benchmarks"]["humaneval"]["pass@1"] == results["benchmarks"]["mbpp"]["pass@1"] == 1.0
    rows = lake.read_table(R1, STAGE, "samples").to_pylist()
    assert sorted((r["benchmark"], r["task_id"]) for r in rows) == sorted(
        {(r["benchmark"], r["task_id"]) for r in rows})  # no sample twice
    assert len(rows) == 16


def test_transformers_backend_judges_real_generations(tmp_path, model):
    section = {"backend": "transformers", "dtype": "float32", "max_model_len": 512,
               "sampling": {"max_new_tokens": 16}, "benchmarks": [{"name": "mbpp", "max_tasks": 2}],
               "fim": {"enabled": False}, "bpb": {"enabled": False}}
    results, lake = evaluate(tmp_path, model, None, **section)
    assert results["backend"] == "transformers" and results["benchmarks"]["mbpp"]["samples"] == 2
    rows = lake.read_table(R1, STAGE, "samples").to_pylist()
    assert all(r["completion"] and r["verdict"] != "passed" for r in rows)  # a random model writes noise


@pytest.mark.slow
def test_vllm_on_a_tiny_model_gives_a_full_report(tmp_path, model):
    pytest.importorskip("vllm")
    backend = "vllm"
    section = {"backend": backend, "dtype": "float32", "max_model_len": 1024, "gpu_memory_utilization": 0.05,
               "kv_cache_memory_bytes": 256 << 20,
               "sampling": {"n": 2, "temperature": 0.8, "max_new_tokens": 24}, "pass_k": [1, 2],
               "benchmarks": [{"name": "humaneval", "max_tasks": 3}, {"name": "mbpp", "max_tasks": 3}],
               "fim": {"max_tasks": 3, "max_new_tokens": 16}, "bpb": {"max_files_per_language": 3, "window": 256}}
    cfg = load_config(config_file(tmp_path / "cfg.json", tmp_path / "lake", **section))
    lake = cfg.open_lake()
    commit_model(lake, R1, model)
    heldout = commit_heldout(lake, R1)
    out = subprocess.run([sys.executable, "-m", "training.evaluate", "--release", "r1", "--config",
                          str(tmp_path / "cfg.json")], cwd=REPO, capture_output=True, text=True, timeout=1200,
                         env={**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| humaneval | 3 |" in out.stdout and "bits/byte" in out.stdout
    commit = lake.require(R1, STAGE)
    results = json.loads(lake.storage.read_bytes(f"{commit.prefix}/report/results.json"))
    assert results["backend"] == backend and results["pass_k"] == [1, 2]
    assert all(0.0 <= b["pass@1"] <= b["pass@2"] <= 1.0 for b in results["benchmarks"].values())
    assert {b["samples"] for b in results["benchmarks"].values()} == {6}
    assert set(results["fim"]) == {"single_line", "multi_line"}
    assert set(results["bpb"]) == {"Python", "Markdown", "overall"}
    vocab = json.loads((model / "config.json").read_text())["vocab_size"]
    for language, entry in results["bpb"].items():
        # a random model spreads its bets: about log2(vocab) bits per token
        per_token = entry["bits"] / entry["tokens"]
        assert 0.7 * math.log2(vocab) < per_token < 1.3 * math.log2(vocab), (language, per_token)
        assert entry["files"] == (6 if language == "overall" else 3)
    assert len({r["content"] for r in heldout}) == 9
    assert commit.stats["metrics"]["xcom"]["heldout_bits_per_byte"] == results["bpb"]["overall"]["bits_per_byte"]
    for name in ("results.md", "results.svg", "results.json"):
        assert f"{commit.prefix}/report/{name}" in commit.datasets["report"]
