"""Stage ``pretrain``: train a model on the committed packed shards of a release, checkpoint, export.

    python -m training.pretrain --release 2026-q3 [--config config/local.yaml] [--fresh] [--init scratch]

From scratch, or (``stages.pretrain.init``) continued from the final model of the base release the release's
manifest names, on the continued phase schedule.

Without RANK in the environment and with ``stages.pretrain.local.launcher: deepspeed`` the command re-launches
itself under the DeepSpeed launcher with ``local.processes`` ranks (CPU over gloo locally); under a launcher
(deepspeed, torchrun on the k8s Job) it is one rank. A re-run after a kill resumes the uncommitted attempt
from its newest complete checkpoint; ``--fresh`` starts a new attempt instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

from lake.cli import run_stage, stage_parser
from lake.config import REPO_ROOT
from training.pretrain.config import PretrainConfig

log = logging.getLogger(__name__)
STAGE = "pretrain"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launcher_command(argv: list[str], cfg: PretrainConfig) -> list[str]:
    """The DeepSpeed launcher command that runs this stage on ``local.processes`` ranks."""
    deepspeed = Path(sys.executable).with_name("deepspeed")
    if not deepspeed.exists():
        raise FileNotFoundError(f"the DeepSpeed launcher {deepspeed} is missing (is deepspeed installed "
                                f"in {sys.prefix}?)")
    port = cfg.local.master_port or free_port()
    return [sys.executable, str(deepspeed), "--num_gpus", str(cfg.local.processes), "--master_port", str(port),
            "--module", "training.pretrain", *argv]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = stage_parser(STAGE, __doc__.split("\n\n")[0], partition="release")
    parser.add_argument("--fresh", action="store_true",
                        help="start a new attempt instead of resuming an interrupted one")
    parser.add_argument("--init", choices=["auto", "scratch", "base_release"], default=None,
                        help="override stages.pretrain.init: where the weights start")
    # Set by the DeepSpeed launcher; the rank comes from the environment (LOCAL_RANK) instead.
    parser.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)

    def body(args, cfg) -> int:
        stage_cfg = cfg.stage(STAGE, PretrainConfig)
        if args.init:
            stage_cfg = stage_cfg.model_copy(update={"init": args.init})
        if "RANK" not in os.environ and stage_cfg.local.launcher == "deepspeed":
            cmd = launcher_command(argv, stage_cfg)
            log.info("launching %d rank(s): %s", stage_cfg.local.processes, " ".join(cmd))
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                           os.environ.get("PYTHONPATH")])))
            # Become the launcher (exec, not a child): a SIGTERM from Airflow reaches it, and it stops its ranks.
            logging.shutdown()
            os.execve(cmd[0], cmd, env)
        from training.pretrain.train import Trainer

        stats = Trainer(cfg.open_lake(), args.partition, stage_cfg, fresh=args.fresh).run()
        if stats:
            m = stats["metrics"]
            log.info("pretrain %s committed: %d steps, loss %.4f -> %.4f, %s tokens/s, export %s", args.release,
                     m["steps"], m["loss_first"] or float("nan"), m["loss_last"] or float("nan"),
                     m["tokens_per_s"], m.get("export"))
        return 0

    return run_stage(parser, argv, body)
