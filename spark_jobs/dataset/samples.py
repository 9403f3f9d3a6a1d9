"""Print decoded documents of a committed dataset build: what the model will actually read.

    python -m spark_jobs.dataset.samples --release 2026-q3 --source repo_level -n 2

Documents are re-assembled from the packed rows and decoded with the build's tokenizer; special tokens are
shown by name, so FIM samples and repository file separators are visible as such.
"""

from __future__ import annotations

import argparse
import itertools
import sys

from lake import tokens
from lake.config import ConfigError, load_config
from lake.stage import Partition, StageNotCommitted
from lake.token_shards import SOURCES, TokenShards, read_index, tokenizer_location
from spark_jobs.dataset import fim
from spark_jobs.dataset.documents import decode_document, render


def samples(lake, release: str, source: str, count: int, *, skip: int = 0, fim_only: bool = False,
            stage: str = "dataset_build") -> list[tuple[str, int]]:
    """``(decoded text, token count)`` of ``count`` documents of ``source``, after skipping ``skip``."""
    part = Partition.release(release)
    index = read_index(lake, part, stage)
    tokenizer = tokens.load(lake, *tokenizer_location(index))
    docs = ((decode_document(tokenizer, ids, bos_id=index["bos_id"]), len(ids))
            for ids in TokenShards(lake, part, source, stage=stage).documents())
    if fim_only:
        docs = ((d, n) for d, n in docs if fim.is_fim(d))
    return [(render(d), n) for d, n in itertools.islice(docs, skip, skip + count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", required=True, help="release name")
    parser.add_argument("--source", choices=SOURCES, default="file_level", help="token source (default: file_level)")
    parser.add_argument("-n", "--count", type=int, default=2, help="documents to print (default: 2)")
    parser.add_argument("--skip", type=int, default=0, help="documents to skip first (default: 0)")
    parser.add_argument("--fim-only", action="store_true", help="only FIM samples")
    parser.add_argument("--max-chars", type=int, default=2000, help="cut each document after this many characters")
    parser.add_argument("--config", default=None, help="profile YAML (default: the active profile)")
    args = parser.parse_args(argv)
    try:
        lake = load_config(args.config).open_lake()
        found = samples(lake, args.release, args.source, args.count, skip=args.skip, fim_only=args.fim_only)
    except (ConfigError, StageNotCommitted, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for i, (text, n_tokens) in enumerate(found, args.skip):
        cut = text if len(text) <= args.max_chars else text[: args.max_chars] + f"\n…[{len(text) - args.max_chars} more chars]"
        print(f"===== {args.source} document {i} ({n_tokens} tokens incl. eos) =====\n{cut}\n")
    if not found:
        print(f"no {'FIM ' if args.fim_only else ''}documents in {args.source}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
