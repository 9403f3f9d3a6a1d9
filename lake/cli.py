"""The common command line of every stage: ``python -m <stage module> --snapshot ID [--config PATH]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from lake.config import ConfigError, PlatformConfig, load_config
from lake.stage import check_snapshot


def stage_parser(stage: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{stage}", description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--snapshot", required=True, type=_snapshot, help="snapshot id to process, e.g. 2026-10")
    parser.add_argument("--config", default=None,
                        help="profile YAML (default: $SEEDCODER_CONFIG or config/$SEEDCODER_PROFILE.yaml, local)")
    parser.add_argument("--log-level", default=os.environ.get("SEEDCODER_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one config value, e.g. stages.pretrain.seed=2 (the value is YAML; repeatable)")
    return parser


def parse_overrides(items: list[str]) -> dict:
    """``--set`` items as the nested mapping ``load_config`` merges over the profile.

    >>> parse_overrides(["stages.pretrain.seed=2", "stages.pretrain.phases=[]", "stages.x.name=a=b"])
    {'stages': {'pretrain': {'seed': 2, 'phases': []}, 'x': {'name': 'a=b'}}}
    """
    import yaml

    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ValueError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. stages.pretrain.seed=2")
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {part!r} is set both as a value and as a section")
        node[leaf] = yaml.safe_load(value) if value else None
    return out


def _snapshot(value: str) -> str:
    try:
        return check_snapshot(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def run_stage(parser: argparse.ArgumentParser, argv: list[str] | None,
              body: Callable[[argparse.Namespace, PlatformConfig], int | None]) -> int:
    """Parse, configure logging, load config, run ``body``; turn expected failures into one clear line."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, overrides=parse_overrides(args.overrides))
        return int(body(args, cfg) or 0)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        logging.getLogger(parser.prog).error("%s", err)
        return 2
