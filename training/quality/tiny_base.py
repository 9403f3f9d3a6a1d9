"""Build the tiny base checkpoint of the CPU profile: a random-init Llama plus a byte-level BPE tokenizer.

Production fine-tunes a 1.3B Llama-2-structured base; nothing can be downloaded here, so the local profile,
the tests and the CPU benchmark start from a model built on the spot. The tokenizer is trained on real code
already on disk (the Python standard library), so token counts and file lengths behave like real code rather
than like random bytes. The output is plain Hugging Face format (``config.json``, ``model.safetensors``,
``tokenizer.json``), which transformers and vLLM load unchanged.

    python -m training.quality.tiny_base --out .work/tiny_base
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
SPECIAL_TOKENS = [BOS, EOS, PAD]


@dataclass(frozen=True)
class TinyLlamaShape:
    """Shape of the tiny base. Defaults give ~4M parameters: big enough to learn a signal, small enough for CI.

    head_dim = hidden_size / num_attention_heads = 64, a head size every vLLM CPU attention backend supports.
    """

    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 688
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0
    seed: int = 0


def code_corpus(root: Path | None = None, *, max_files: int = 400, max_bytes: int = 8_000_000) -> Iterator[str]:
    """Python sources of the standard library (sorted, so the tokenizer is the same on every run)."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    total = 0
    for n, path in enumerate(sorted(root.rglob("*.py"))):
        if n >= max_files or total >= max_bytes:
            return
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        total += len(text)
        yield text


def train_tokenizer(vocab_size: int, corpus: Iterator[str]):
    """A byte-level BPE (GPT-2 style pre-tokenizer) with bos/eos/pad specials, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   model_max_length=1 << 20)


def build_tiny_base(out: Path, shape: TinyLlamaShape = TinyLlamaShape(), corpus_root: Path | None = None) -> Path:
    """Write tokenizer + random-init LlamaForCausalLM to ``out`` (HF format); returns ``out``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(shape.vocab_size, code_corpus(corpus_root))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=shape.hidden_size, intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers, num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads, max_position_embeddings=shape.max_position_embeddings,
        rope_theta=shape.rope_theta, rms_norm_eps=1e-6, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, torch_dtype="float32",
    )
    torch.manual_seed(shape.seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "tiny_base.json").write_text(json.dumps(asdict(shape), indent=2) + "\n")
    log.info("tiny base: %.2fM parameters, vocab %d -> %s", model.num_parameters() / 1e6, len(tokenizer), out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tiny_base", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="directory to write the HF checkpoint to")
    defaults = TinyLlamaShape()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    shape = TinyLlamaShape(**{k: getattr(args, k) for k in asdict(defaults)})
    build_tiny_base(args.out, shape)
    return 0


if __name__ == "__main__":
    sys.exit(main())
