"""The vLLM offline oracle (LLM.generate) on a real engine, as ``oracle: release:<name>`` configures it: a release's
model (here the random tiny LM, committed as the release's pretrain export) rates the files. It cannot follow the
prompt, so every answer must end up counted as unusable and unlabelled, never guessed into a rating."""

import pytest

pytest.importorskip("vllm")

from lake.release import partition  # noqa: E402
from lake.stage import Partition, StageRun  # noqa: E402
from tests.release_fixtures import commit_release  # noqa: E402
from tests.training.quality.conftest import SNAPSHOT, VERSION  # noqa: E402
from training.quality import oracle_label  # noqa: E402
from training.quality.config import OracleLabelConfig  # noqa: E402


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_vllm_oracle_answers_are_parsed_and_garbage_is_never_labelled(input_lake, tiny_base):
    commit_release(input_lake, "r1", [])
    with StageRun(input_lake, partition("r1"), "pretrain") as run:
        for path in sorted(p for p in tiny_base.iterdir() if p.is_file()):
            run.write_bytes(f"hf/{path.name}", path.read_bytes())
    cfg = OracleLabelConfig(sample_size=12, shard_size=6, oracle="release:r1", max_chars=300,
                            max_new_tokens=24, engine_args={"dtype": "float32", "max_model_len": 1024,
                                                            "gpu_memory_utilization": 0.1, "enforce_eager": True})
    stats = oracle_label.run(input_lake, VERSION, SNAPSHOT, cfg)
    failures = input_lake.read_table(Partition.scorer(VERSION), "oracle_label", "failures")
    assert stats["records_in"] == 12 and stats["records_out"] == 0
    assert failures.num_rows == 12 and all(a is not None for a in failures.column("answer").to_pylist())
    assert set(stats["drop_reasons"]) <= {"unparseable_answer", "empty_answer"}
    assert stats["metrics"]["oracle"] == "vllm:release:r1" and stats["metrics"]["oracle_is_llm"] is True
