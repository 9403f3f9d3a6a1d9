"""Stage ``tokenizer`` of a release: train the byte-level BPE tokenizer on the release's files, or pin another
release's, and save it in HF format.

Seed-Coder's tokenizer (released with the 8B models) is a byte-level BPE with digits split one by one and
the special tokens of ``lake.tokens`` (sequence begin/end, padding, a separator, the three FIM markers; bos is id 0
and eos id 2). We train the same shape with the ``tokenizers`` library: no normaliser (code is byte-exact, so
``decode(encode(text)) == text`` for every UTF-8 string), a pre-tokenizer that isolates every digit and then
applies the GPT-2 byte-level split, and the special tokens first so their ids are fixed whatever the corpus.

The output is the dataset ``tokenizer`` of the stage: ``tokenizer.json``, ``tokenizer_config.json`` and
``special_tokens_map.json``, which ``transformers.AutoTokenizer.from_pretrained`` loads as a fast tokenizer.

The release's manifest decides the policy (lake/release.py): ``train`` trains on the release's file-level
documents; ``pin`` copies the pinned release's files byte for byte (checked against the SHA256 the manifest
recorded), so token ids stay the same across releases and a model can continue training on the new one. A
release's tokenizer never changes once committed (its token shards and model depend on the ids): a re-run finds
it committed and does nothing.

    python -m spark_jobs.dataset.tokenizer --release 2026-q3
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Iterator

from pydantic import Field

from lake import release as rel
from lake.cli import run_stage, stage_parser
from lake.config import StrictModel
from lake.stage import Lake, Partition, StageRun
from lake.tokens import (
    BOS,
    DATASET,
    EOS,
    FILES,
    FIM_MIDDLE,
    FIM_PREFIX,
    FIM_SUFFIX,
    PAD,
    SEP,
    SPECIAL_IDS,
    SPECIAL_TOKENS,
    STAGE,
    from_json,
)

log = logging.getLogger(__name__)


class TokenizerConfig(StrictModel):
    """``stages.tokenizer`` in the profile YAML."""

    # Stage of the release whose committed ``files`` (file-level rows) are the training corpus.
    input: str = rel.STAGE
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


def corpus(lake: Lake, part: Partition, cfg: TokenizerConfig, stats) -> Iterator[str]:
    """The training texts: sampled file-level documents in commit order, bounded by ``max_training_bytes``."""
    total = 0
    columns = ["id", "content", "size_bytes", "file_level"]
    for batch in lake.iter_batches(part, cfg.input, "files", columns=columns):
        for file_id, content, size, file_level in zip(*(batch.column(c).to_pylist() for c in columns), strict=True):
            if not file_level:
                continue  # an older copy kept only for its repository's document: its text is already in
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


def run(lake: Lake, release: str, cfg: TokenizerConfig) -> dict:
    """Train (or pin) release ``release``'s tokenizer; a committed one is left as it is. Returns the stage stats."""
    part = rel.partition(release)
    manifest = rel.read_manifest(lake, release)
    existing = lake.commit_info(part, STAGE)
    if existing is not None:
        log.info("release %s already has its tokenizer (%s, committed %s): a release's tokenizer never changes",
                 release, existing.stats["metrics"].get("policy"), existing.committed_at)
        return existing.stats
    lake.require(part, cfg.input)
    with StageRun(lake, part, STAGE, params=cfg.model_dump()) as stage_run:
        if manifest.tokenizer.policy == "pin":
            files = _pinned_files(lake, manifest.tokenizer)
            stage_run.stats.metrics["pinned_from"] = manifest.tokenizer.release
        else:
            tokenizer = train(corpus(lake, part, cfg, stage_run.stats), vocab_size=cfg.vocab_size,
                              min_frequency=cfg.min_frequency)
            if stage_run.stats.records_out == 0:
                raise ValueError(f"no training text: stage {cfg.input!r} of release {release!r} has no usable files")
            files = hf_files(tokenizer)
        for name, data in files.items():
            stage_run.write_bytes(f"{DATASET}/{name}", data)
            stage_run.stats.bytes_out += len(data)
        vocab = from_json(files["tokenizer.json"].decode()).get_vocab_size()
        stage_run.stats.metrics.update({"policy": manifest.tokenizer.policy, "vocab_size": vocab,
                                        "target_vocab_size": cfg.vocab_size, "special_tokens": SPECIAL_IDS,
                                        "sha256": hashlib.sha256(files["tokenizer.json"]).hexdigest()})
        log.info("%s tokenizer of release %s: %d tokens", "pinned" if manifest.tokenizer.policy == "pin"
                 else f"trained on {stage_run.stats.records_out} files,", release, vocab)
    return stage_run.stats.to_dict()


def _pinned_files(lake: Lake, ref: rel.TokenizerRef) -> dict[str, bytes]:
    """The pinned release's tokenizer files, refused if they are not the ones the manifest recorded."""
    info = lake.require(rel.partition(ref.release), STAGE)
    files = {name: lake.storage.read_bytes(f"{info.prefix}/{DATASET}/{name}") for name in FILES}
    found = hashlib.sha256(files["tokenizer.json"]).hexdigest()
    if found != ref.sha256:
        raise ValueError(f"the tokenizer of release {ref.release!r} has SHA256 {found}, but the manifest pinned "
                         f"{ref.sha256}: it changed since the cut; cut a new release")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(STAGE, __doc__.split("\n\n")[0], partition="release")

    def body(args, cfg):
        run(cfg.open_lake(), args.release, cfg.stage(STAGE, TokenizerConfig))

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    sys.exit(main())
