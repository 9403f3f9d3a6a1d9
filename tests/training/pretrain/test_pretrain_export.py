"""The exported model is a plain Hugging Face checkpoint: transformers and vLLM (CPU) load it unchanged and
complete SPM fill-in-the-middle prompts the way it was trained.

The tiny preset is trained (through the stage) on a corpus of a few short functions, each seen as a plain
document and as an SPM sample with a known middle, until it has learned them; then the prompt
``<[fim-suffix]>SUFFIX<[fim-prefix]>PREFIX<[fim-middle]>`` must produce exactly that middle.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lake.stage import Lake, Partition
from tests.training.pretrain.pretrain_lake import SNIPPETS, build_shards, run_stage, write_config

pytest.importorskip("deepspeed")
pytestmark = [pytest.mark.gpu_env, pytest.mark.slow]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("export")
    lake = Lake.at(str(tmp / "lake"))
    build_shards(lake, "fim")
    config = write_config(tmp / "cfg.yaml", tmp / "lake", tmp / "scratch", micro_batch_size=8, warmup_steps=10,
                          checkpoint_every=100, log_every=25, local={"launcher": "inline"},
                          phases=[{"name": "regular", "steps": 160, "lr": 3e-3}])
    run_stage("fim", config)
    info = lake.require(Partition.release("fim"), "pretrain")
    return lake.storage.local_path(f"{info.prefix}/hf")


def test_the_export_is_a_complete_hf_directory(exported: Path):
    names = {p.name for p in exported.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json", "fim.json"} <= names


def test_transformers_completes_fim_prompts(exported: Path):
    from training.pretrain.export import complete_fim

    right = [complete_fim(exported, prefix, suffix, max_new_tokens=16) == middle
             for prefix, middle, suffix in SNIPPETS]
    assert sum(right) >= len(SNIPPETS) - 1, right


def test_vllm_loads_the_export_and_agrees_with_transformers(exported: Path, monkeypatch):
    pytest.importorskip("vllm")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.pretrain.export import spm_prompt_ids

    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine in this process (no spawn of pytest)
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    tokenizer = AutoTokenizer.from_pretrained(exported)
    prompts = [spm_prompt_ids(tokenizer, prefix, suffix) for prefix, _middle, suffix in SNIPPETS]
    llm = LLM(model=str(exported), dtype="float32", max_model_len=256, seed=0, enforce_eager=True,
              max_num_seqs=4, gpu_memory_utilization=0.05, kv_cache_memory_bytes=1 << 28)
    outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts],
                           SamplingParams(temperature=0, max_tokens=16))
    model = AutoModelForCausalLM.from_pretrained(exported)
    for prompt, output in zip(prompts, outputs, strict=True):
        ids = torch.tensor([prompt])
        reference = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False,
                                   pad_token_id=tokenizer.pad_token_id)[0, len(prompt):].tolist()
        assert list(output.outputs[0].token_ids) == reference[: len(output.outputs[0].token_ids)]
    right = [o.outputs[0].text == middle for o, (_p, middle, _s) in zip(outputs, SNIPPETS, strict=True)]
    assert sum(right) >= len(SNIPPETS) - 1, [o.outputs[0].text for o in outputs]
