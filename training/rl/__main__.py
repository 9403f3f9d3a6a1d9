"""``python -m training.rl {warmup,curriculum,grpo} --release R [--round K]``: the RL stages (training/rl/stage.py).

    python -m training.rl warmup --release demo.rl --set stages.rl.model.release=demo   # or --model DIR
    python -m training.rl curriculum --release demo.rl --round 1
    python -m training.rl grpo --release demo.rl --round 1          # a killed round resumes; --fresh restarts it

Locally each step is one process (CPU, gloo); on k8s the warm-up and the rounds run under torchrun, one rank per
GPU (the ``rl`` DAG's Indexed Job), and judge through the sandbox service.
"""

from __future__ import annotations

import argparse
import logging
import sys

from lake.cli import run_stage, stage_parser
from training.rl import stage

log = logging.getLogger("rl")


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("rl", __doc__.split("\n\n")[0], partition="release")
    parser.add_argument("step", choices=stage.STEPS,
                        help="warmup: task set + supervised warm-up; curriculum: the round's task set from pass "
                             "rates; grpo: the round's GRPO steps")
    parser.add_argument("--round", type=int, default=None, help="the round (1-based) of curriculum and grpo")
    parser.add_argument("--model", default=None,
                        help="warmup: a Hugging Face model directory or lake URI to start from, instead of "
                             "stages.rl.model's export (an empty value means not given)")
    parser.add_argument("--tasks", default=None,
                        help="warmup: the task set (mbpp:<split>, easy:<count>, a JSONL path or lake URI) instead of "
                             "stages.rl.tasks (an empty value means not given)")
    parser.add_argument("--fresh", action="store_true", help="start a new attempt instead of resuming a killed one")
    # Set by launchers that pass the rank as an argument; the rank comes from the environment instead.
    parser.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)

    def body(args, cfg) -> int:
        if args.step != "warmup" and (args.round is None or args.round < 1):
            raise ValueError(f"{args.step} needs --round K (1-based)")
        if args.step == "warmup":
            stats = stage.warmup(cfg, args.partition, model=args.model or None, tasks=args.tasks or None)
        elif args.step == "curriculum":
            stats = stage.curriculum(cfg, args.partition, args.round, fresh=args.fresh)
        else:
            stats = stage.grpo(cfg, args.partition, args.round, fresh=args.fresh)
        if stats:
            log.info("%s %s committed: %s", args.step, args.partition, stats["metrics"].get("xcom"))
        return 0

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    sys.exit(main())
