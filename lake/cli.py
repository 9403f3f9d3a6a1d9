"""The common command line of every stage: ``python -m <stage module> --snapshot ID [--config PATH]``.

A stage runs on one kind of partition (:class:`lake.stage.Partition`): the data stages take ``--snapshot``, the
model stages of a release ``--release``, the scorer stages ``--version``. The flag takes one id or several,
comma-separated (``--snapshot 2026-08,2026-09``): the stage then runs once per id, in the order given, and stops
at the first failure. That is how a DAG run triggered by several Asset events processes every one of them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from lake.config import ConfigError, PlatformConfig, load_config
from lake.stage import Partition, PartitionKind

# The flag and its help per partition kind; ``dest`` is the attribute the stage body reads.
FLAGS: dict[str, tuple[str, str]] = {
    "snapshot": ("--snapshot", "snapshot id(s) to process, e.g. 2026-10 (comma-separated: each in turn)"),
    "release": ("--release", "release name(s) to process, e.g. 2026-q3 (comma-separated: each in turn)"),
    "scorer": ("--version", "scorer version to write, e.g. v2"),
}


def stage_parser(stage: str, description: str, partition: PartitionKind = "snapshot") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{stage}", description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    flag, help_text = FLAGS[partition]
    parser.add_argument(flag, required=True, type=_ids(partition), help=help_text)
    parser.set_defaults(_partition_kind=partition)
    parser.add_argument("--config", default=None,
                        help="profile YAML (default: $SEEDCODER_CONFIG or config/$SEEDCODER_PROFILE.yaml, local)")
    parser.add_argument("--log-level", default=os.environ.get("SEEDCODER_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def split_ids(value: str, kind: PartitionKind = "snapshot") -> list[str]:
    """The ids of a comma-separated list, each checked, duplicates dropped, order kept.

    >>> split_ids("2026-09,2026-08,2026-09")
    ['2026-09', '2026-08']
    """
    ids = [v.strip() for v in value.split(",")] if value else []
    if not ids or not all(ids):
        raise ValueError(f"empty {kind} id in {value!r}")
    return list(dict.fromkeys(Partition(kind, v).name for v in ids))


def _ids(kind: PartitionKind) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        try:
            return split_ids(value, kind)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


def run_stage(parser: argparse.ArgumentParser, argv: list[str] | None,
              body: Callable[[argparse.Namespace, PlatformConfig], int | None]) -> int:
    """Parse, configure logging, load config, run ``body`` once per id; turn expected failures into one clear line.

    ``body`` sees ``args.snapshot`` (or ``args.release`` / ``args.version``) set to one id, and ``args.partition``
    to its :class:`~lake.stage.Partition`.
    """
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kind = args._partition_kind
    dest = FLAGS[kind][0].removeprefix("--")
    ids = getattr(args, dest)
    try:
        cfg = load_config(args.config)
        for name in ids:
            if len(ids) > 1:
                logging.getLogger(parser.prog).info("%s %s (%d of %d)", kind, name, ids.index(name) + 1, len(ids))
            setattr(args, dest, name)
            args.partition = Partition(kind, name)
            status = int(body(args, cfg) or 0)
            if status:
                return status
        return 0
    except (ConfigError, FileNotFoundError, ValueError) as err:
        logging.getLogger(parser.prog).error("%s", err)
        return 2
