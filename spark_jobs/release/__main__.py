"""Cut a release: ``python -m spark_jobs.release --release NAME (--snapshots A,B | --up-to X) [--base NAME]
[--tokenizer train|pin [--tokenizer-from NAME]]``.

A release is a named, immutable training corpus: the curated files of the chosen snapshots (each repository made
whole again at its newest version), their commit samples (redacted, decontaminated) and scores, and a manifest
(lake/release.py) naming every input attempt, the tokenizer policy, the base release and the config. An existing
name is refused.
"""

from __future__ import annotations

import sys

from lake.cli import run_stage, split_ids, stage_parser
from spark_jobs.release.stage import cut_release


def _optional(value: str) -> str | None:
    """Empty means unset (the DAG passes every param, empty ones as '')."""
    return value.strip() or None


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("release", __doc__.split("\n\n")[0], partition="release")
    parser.add_argument("--snapshots", type=_optional, default=None,
                        help="comma-separated snapshot ids to include")
    parser.add_argument("--up-to", type=_optional, default=None,
                        help="include every snapshot with a committed input stage up to this id (inclusive)")
    parser.add_argument("--base", type=_optional, default=None,
                        help="the release this one continues from (continued pretraining starts from its model)")
    parser.add_argument("--tokenizer", choices=["train", "pin"], default="train",
                        help="train a tokenizer on this release, or pin an earlier release's")
    parser.add_argument("--tokenizer-from", type=_optional, default=None,
                        help="with --tokenizer pin: the release whose tokenizer is pinned (default: --base)")

    def body(args, cfg) -> int:
        snapshots = split_ids(args.snapshots) if args.snapshots else None
        manifest = cut_release(cfg, args.release, snapshots=snapshots, up_to=args.up_to, base=args.base,
                               tokenizer=args.tokenizer, tokenizer_from=args.tokenizer_from)
        print(manifest.to_json(), end="")
        return 0

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    sys.exit(main())
