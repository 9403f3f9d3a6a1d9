"""Stage ``tokenizer``: train the byte-level BPE tokenizer on the curated corpus and save it in HF format.

Seed-Coder's tokenizer (released with the 8B models) is a byte-level BPE with digits split one by one and
the special tokens of ``lake.tokens`` (sequence begin/end, padding, a separator, the three FIM markers; bos is id 0
and eos id 2). We train the same shape with the ``tokenizers`` library: no normaliser (code is byte-exact, so
``decode(encode(text)) == text`` for every UTF-8 string), a pre-tokenizer that isolates every digit and then
applies the GPT-2 byte-level split, and the special tokens first so their ids are fixed whatever the corpus.

The output is the dataset ``tokenizer`` of the stage: ``tokenizer.json``, ``tokenizer_config.json`` and
``special_tokens_map.json``, which ``transformers.AutoTokenizer.from_pretrained`` loads as a fast tokenizer.

    python -m spark_jobs.dataset.tokenizer --snapshot 2026-10
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

from pydantic import Field

from lake.cli import run_stage, stage_parser
from lake.config import StrictModel
from lake.stage import Lake, StageRun
from lake.tokens import (
    BOS,
    DATASET,
    EOS,
    FIM_MIDDLE,
    FIM_PREFIX,
    FIM_SUFFIX,
    PAD,
    SEP,
    SPECIAL_IDS,
    SPECIAL_TOKENS,
    STAGE,
)

log = logging.getLogger(__name__)


class TokenizerConfig(StrictModel):
    """``stages.tokenizer`` in the profile YAML."""

    # Stage whose committed ``files`` dataset is the training corpus.
    input: str = "quality_filter"
    # Target vocabulary, special tokens included (155,136 at full scale, the released model's size).
    vocab_size: int = Field(155_136, ge=len(SPECIAL_TOKENS) + 256)
    # A pair must occur this often to be merged.
    min_frequency: int = Field(2, ge=1)
    # Fraction of files sampled (by id hash, so the sample is the same on every run).
    sample_fraction: float = Field(1.0, gt=0.0, le=1.0)
    # Stop reading the corpus after this many bytes of sampled text.
    max_training_bytes: int = Field(4_000_000_000, ge=1)
    # Files larger than this are left out of training (long data literals teach the BPE bad merges).
    max_file_bytes: int = Field(200_000, ge=1)


def build_untrained():
    """An empty byte-level BPE with the Seed-Coder pre-tokenization and decoding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train(texts: Iterator[str], *, vocab_size: int, min_frequency: int = 2):
    """Train the tokenizer on ``texts``; the special tokens take ids 0..6 and text never produces them."""
    from tokenizers import pre_tokenizers, trainers

    tokenizer = build_untrained()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    for token, expected in SPECIAL_IDS.items():
        if tokenizer.token_to_id(token) != expected:
            raise RuntimeError(f"special token {token} got id {tokenizer.token_to_id(token)}, expected {expected}")
    tokenizer.encode_special_tokens = True
    return tokenizer


def hf_files(tokenizer) -> dict[str, bytes]:
    """The files of a Hugging Face tokenizer directory."""
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "sep_token": SEP,
        "additional_special_tokens": [FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE],
        "add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False,
        "model_max_length": 32768,
    }
    special_map = {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "sep_token": SEP,
                   "additional_special_tokens": [FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE]}
    return {
        "tokenizer.json": tokenizer.to_str(pretty=False).encode(),
        "tokenizer_config.json": (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode(),
        "special_tokens_map.json": (json.dumps(special_map, indent=2, ensure_ascii=False) + "\n").encode(),
    }










def in_sample(file_id: str, fraction: float) -> bool:
    """Deterministic sampling on the content-derived id.

    >>> in_sample("00" * 32, 0.01), in_sample("ff" * 32, 0.99)
    (True, False)
    """
    return fraction >= 1.0 or int(file_id[:15], 16) / 16**15 < fraction


def corpus(lake: Lake, snapshot: str, cfg: TokenizerConfig, stats) -> Iterator[str]:
    """The training texts: sampled input files in commit order, bounded by ``max_training_bytes``."""
    total = 0
    for batch in lake.iter_batches(snapshot, cfg.input, "files", columns=["id", "content", "size_bytes"]):
        for file_id, content, size in zip(batch.column("id").to_pylist(), batch.column("content").to_pylist(),
                                          batch.column("size_bytes").to_pylist(), strict=True):
            stats.records_in += 1
            if not in_sample(file_id, cfg.sample_fraction):
                stats.drop("not_sampled")
                continue
            if size > cfg.max_file_bytes:
                stats.drop("too_large_for_training")
                continue
            if total >= cfg.max_training_bytes:
                stats.drop("over_training_budget")
                continue
            total += size
            stats.records_out += 1
            stats.bytes_in += size
            if stats.records_out % 10_000 == 0:
                log.info("tokenizer corpus: %d files, %.1f MB", stats.records_out, total / 1e6)
            yield content


def run(lake: Lake, snapshot: str, cfg: TokenizerConfig) -> dict:
    lake.require(snapshot, cfg.input)
    with StageRun(lake, snapshot, STAGE, params=cfg.model_dump()) as stage_run:
        tokenizer = train(corpus(lake, snapshot, cfg, stage_run.stats), vocab_size=cfg.vocab_size,
                          min_frequency=cfg.min_frequency)
        if stage_run.stats.records_out == 0:
            raise ValueError(f"no training text: stage {cfg.input!r} of snapshot {snapshot!r} has no usable files")
        for name, data in hf_files(tokenizer).items():
            stage_run.write_bytes(f"{DATASET}/{name}", data)
            stage_run.stats.bytes_out += len(data)
        stage_run.stats.metrics.update({"vocab_size": tokenizer.get_vocab_size(),
                                        "target_vocab_size": cfg.vocab_size,
                                        "special_tokens": SPECIAL_IDS})
        log.info("trained tokenizer: %d tokens (target %d) on %d files", tokenizer.get_vocab_size(),
                 cfg.vocab_size, stage_run.stats.records_out)
    return stage_run.stats.to_dict()


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(STAGE, __doc__.split("\n\n")[0])

    def body(args, cfg):
        run(cfg.open_lake(), args.snapshot, cfg.stage(STAGE, TokenizerConfig))

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    sys.exit(main())
