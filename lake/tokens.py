"""The tokenizer contract both runtimes share: special tokens, FIM markers, and the committed HF tokenizer files.

Seed-Coder's tokenizer (released with the 8B models) is a byte-level BPE whose special tokens are sequence
begin/end, padding, a separator and the three FIM markers; bos is id 0 and eos id 2. The dataset build (Spark)
trains it and encodes with it (``spark_jobs.dataset.tokenizer``); pretraining, export and evaluation (GPU) read
the same files. Both import the names and the readers from here, so neither runtime imports the other.
"""

from __future__ import annotations

import os
from pathlib import Path

from lake.stage import Lake, Partition, as_partition

STAGE = "tokenizer"
DATASET = "tokenizer"
BOS = "<[begin▁of▁sentence]>"
PAD = "<[PAD▁TOKEN]>"
EOS = "<[end▁of▁sentence]>"
SEP = "<[SEP▁TOKEN]>"
FIM_PREFIX = "<[fim-prefix]>"
FIM_SUFFIX = "<[fim-suffix]>"
FIM_MIDDLE = "<[fim-middle]>"
# Order fixes the ids: bos 0 and eos 2 as in the released Seed-Coder config; pad 1 sits between them.
SPECIAL_TOKENS = (BOS, PAD, EOS, SEP, FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE)
SPECIAL_IDS = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
# The files of a Hugging Face tokenizer directory, as the tokenizer stage commits them.
FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def from_json(text: str):
    """A tokenizer from ``tokenizer.json`` text, set to encode special-token look-alikes in text as text."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(text)
    tokenizer.encode_special_tokens = True
    return tokenizer


def tokenizer_json(lake: Lake, release: Partition, stage: str = STAGE) -> str:
    """The committed ``tokenizer.json`` text of a partition (a release: trained for it, or pinned)."""
    keys = [k for k in lake.dataset_keys(release, stage, DATASET) if k.endswith("/tokenizer.json")]
    if not keys:
        raise FileNotFoundError(f"stage {stage!r} of {as_partition(release)} committed no tokenizer.json")
    return lake.storage.read_bytes(keys[0]).decode()


def load(lake: Lake, release: Partition, stage: str = STAGE):
    """The committed tokenizer of ``release``."""
    return from_json(tokenizer_json(lake, release, stage))


def local_dir(lake: Lake, release: Partition, stage: str = STAGE,
              cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """A local directory holding the HF tokenizer files (the lake itself, or a cache copy of an S3 lake)."""
    info = lake.require(release, stage)
    prefix = f"{info.prefix}/{DATASET}"
    local = lake.storage.local_path(prefix)
    if local is not None:
        return local
    target = Path(cache_dir or Path.home() / ".cache" / "seedcoder" / "tokenizers") / prefix
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (target / name).write_bytes(lake.storage.read_bytes(f"{prefix}/{name}"))
    return target
