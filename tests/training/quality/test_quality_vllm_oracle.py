"""The vLLM offline oracle (LLM.generate) on a real engine: a random tiny LM cannot follow the prompt, so every
answer must end up counted as unusable and unlabelled, never guessed into a rating."""

import pytest

pytest.importorskip("vllm")

from tests.training.quality.conftest import SNAPSHOT  # noqa: E402
from training.quality import oracle_label  # noqa: E402
from training.quality.config import OracleLabelConfig  # noqa: E402


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_vllm_oracle_answers_are_parsed_and_garbage_is_never_labelled(input_lake, tiny_base):
    cfg = OracleLabelConfig(sample_size=12, shard_size=6, oracle="vllm", model=str(tiny_base), max_chars=300,
                            max_new_tokens=24, engine_args={"dtype": "float32", "max_model_len": 1024,
                                                            "gpu_memory_utilization": 0.1, "enforce_eager": True})
    stats = oracle_label.run(input_lake, SNAPSHOT, cfg)
    failures = input_lake.read_table(SNAPSHOT, "oracle_label", "failures")
    assert stats["records_in"] == 12 and stats["records_out"] == 0
    assert failures.num_rows == 12 and all(a is not None for a in failures.column("answer").to_pylist())
    assert set(stats["drop_reasons"]) <= {"unparseable_answer", "empty_answer"}
    assert stats["metrics"]["oracle"] == f"vllm:{tiny_base}" and stats["metrics"]["oracle_is_llm"] is True
