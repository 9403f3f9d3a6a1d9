"""``python -m training.evaluate --release R [--model DIR] [--fresh]``: see training/evaluate/stage.py."""

from __future__ import annotations

import sys

from lake.cli import run_stage, stage_parser
from lake.stage import StageRun
from training.evaluate.config import EvaluateConfig
from training.evaluate.stage import STAGE, Evaluation, model_dir_of
from training.evaluate.stage import __doc__ as STAGE_DOC


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(STAGE, STAGE_DOC.split("\n\n")[0], partition="release")
    parser.add_argument("--model", default=None,
                        help="a Hugging Face model directory to evaluate instead of the release's pretrain export")
    parser.add_argument("--fresh", action="store_true", help="start a new attempt instead of resuming one")

    def body(args, cfg) -> int:
        ecfg = cfg.stage(STAGE, EvaluateConfig)
        lake = cfg.open_lake()
        model_dir, name = model_dir_of(lake, args.partition, ecfg, args.model or None)
        with StageRun(lake, args.partition, STAGE, resume=ecfg.resume and not args.fresh,
                      params={"model": name, **ecfg.model_dump(mode="json")}) as run:
            results = Evaluation(run, cfg, ecfg, model_dir, name).run_all()
        from training.evaluate.report import markdown

        print(markdown(results))
        print(f"evaluate {args.release}: committed {lake.storage.uri(lake.require(args.partition, STAGE).prefix)}")
        return 0

    return run_stage(parser, argv, body)


if __name__ == "__main__":
    sys.exit(main())
