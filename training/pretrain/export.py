"""Export to Hugging Face format: ``config.json`` + safetensors + tokenizer, loadable unchanged by transformers
and vLLM, and the SPM fill-in-the-middle prompt the model was trained on.

SPM prompt (Seed-Coder's only FIM layout): ``<[fim-suffix]>SUFFIX<[fim-prefix]>PREFIX<[fim-middle]>``; the model
writes the middle and ends it with eos. The prompt is built from token ids, because the tokenizer encodes a
marker that appears in text as plain text (training data can contain the marker strings).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from lake.tokens import FILES as TOKENIZER_FILES
from lake.tokens import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX
from training.pretrain.presets import ModelPreset, llama_config

log = logging.getLogger(__name__)

DTYPES = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32"}


def export_hf(state_dict, spec: ModelPreset, *, bos_id: int | None, eos_id: int, pad_id: int | None,
              tokenizer_dir: Path, out_dir: Path, dtype: str = "bfloat16", max_length: int | None = None) -> Path:
    """Write the model directory; ``state_dict`` is the full set of weights (gathered under ZeRO-3)."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    config = llama_config(spec, bos_id=bos_id, eos_id=eos_id, pad_id=pad_id)
    config.use_cache = True
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    state = {k: v.detach().to("cpu", getattr(torch, DTYPES[dtype])).contiguous() for k, v in state_dict.items()}
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if not (k == "lm_head.weight" and spec.tie_word_embeddings)]
    if missing or unexpected:
        raise ValueError(f"weights do not match the {spec.name} architecture: missing {missing}, "
                         f"unexpected {unexpected}")
    if spec.tie_word_embeddings:
        model.tie_weights()
    model.config.dtype = dtype
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id,
                                               max_length=max_length or spec.max_position_embeddings)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    for name in TOKENIZER_FILES:
        source = tokenizer_dir / name
        if not source.exists():
            raise FileNotFoundError(f"tokenizer file {source} is missing: the export needs {TOKENIZER_FILES}")
        shutil.copyfile(source, out_dir / name)
    (out_dir / "fim.json").write_text(json.dumps({"layout": "SPM", "prefix": FIM_PREFIX, "suffix": FIM_SUFFIX,
                                                  "middle": FIM_MIDDLE}, indent=2) + "\n")
    log.info("exported %s (%s) to %s", spec.name, dtype, out_dir)
    return out_dir


def fim_ids(tokenizer) -> tuple[int, int, int]:
    """The (suffix, prefix, middle) marker ids; a tokenizer without them cannot serve FIM."""
    ids = tuple(tokenizer.convert_tokens_to_ids(t) for t in (FIM_SUFFIX, FIM_PREFIX, FIM_MIDDLE))
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise ValueError(f"tokenizer has no FIM markers {FIM_SUFFIX}, {FIM_PREFIX}, {FIM_MIDDLE}")
    return ids


def spm_prompt_ids(tokenizer, prefix: str, suffix: str) -> list[int]:
    """Token ids of the SPM prompt ``<[fim-suffix]>SUFFIX<[fim-prefix]>PREFIX<[fim-middle]>``."""
    suffix_id, prefix_id, middle_id = fim_ids(tokenizer)
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    return [suffix_id, *encode(suffix), prefix_id, *encode(prefix), middle_id]


def complete_fim(model_dir: Path, prefix: str, suffix: str, *, max_new_tokens: int = 64) -> str:
    """Greedy middle for ``prefix``/``suffix`` through transformers (what a user of the export runs)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = torch.tensor([spm_prompt_ids(tokenizer, prefix, suffix)])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
