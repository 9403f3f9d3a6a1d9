"""Command line of the sandbox.

    python -m training.sandbox check                      # verify the isolation here (exit 1 when it is missing)
    python -m training.sandbox serve [--port 8080]        # the HTTP service (SandboxFusion's POST /run_code)
    python -m training.sandbox run prog.py [--language python] [--tests tests.py] [--entry-point f] [--stdin FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from lake.config import ConfigError, load_config
from training.sandbox.config import SandboxConfig
from training.sandbox.isolation import SandboxUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="profile YAML (default: the active profile's)")
    parser.add_argument("--workers", type=int, default=None, help="programs at once (default: stages.sandbox)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="run the isolation probe and print what it found")
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    one = sub.add_parser("run", help="run one program and print the result as JSON")
    one.add_argument("program", type=Path)
    one.add_argument("--language", default="python")
    one.add_argument("--tests", type=Path, default=None, help="Python test code (asserts / def check)")
    one.add_argument("--entry-point", default=None)
    one.add_argument("--stdin", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config).stage("sandbox", SandboxConfig)
    except ConfigError as err:
        print(f"sandbox: {err}", file=sys.stderr)
        return 2
    try:
        if args.command == "check":
            from training.sandbox.isolation import Isolation

            facts = Isolation(cfg).probe()
            print(json.dumps({"isolation": "full", **facts}, indent=2))
            return 0
        if args.command == "serve":
            import uvicorn

            from training.sandbox.server import create_app

            uvicorn.run(create_app(cfg, workers=args.workers), host=args.host or cfg.host, port=args.port or cfg.port,
                        log_level=args.log_level.lower())
            return 0
        from training.sandbox.models import Tests
        from training.sandbox.pool import run

        tests = Tests(code=args.tests.read_text(), entry_point=args.entry_point) if args.tests else None
        result = run(args.program.read_text(), args.language, tests, stdin=args.stdin.read_text() if args.stdin
                     else None, cfg=cfg)
        print(result.model_dump_json(indent=2))
        return 0 if (result.passed if tests else result.status == "Success") else 1
    except SandboxUnavailable as err:
        print(f"sandbox: refusing to run: {err}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as err:
        print(f"sandbox: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
