"""The original's loss study: rmse_bce_dice, ssim_dice and rmse_bce, one DVC experiment each.

Queues the three experiments (the workspace's params, plus any -S overrides, plus the preset),
runs the queue (`dvc exp run --run-all`) and prints their test metrics side by side. Needs a
git repository with a commit; the experiments stay in `dvc exp show`.
"""

from __future__ import annotations

import argparse
import shlex

from depthseg.core.cli import run_stage, stage_parser
from depthseg.core.params import Params, parse_override
from depthseg.experiments.loss_study import SHOW_COMMAND, experiment_names, loss_study


def main(params: Params, args: argparse.Namespace) -> None:
    overrides = dict(parse_override(item) for text in args.overrides for item in shlex.split(text))
    print(f"loss study: queueing and running {', '.join(experiment_names(args.prefix))}")
    table = loss_study(args.prefix, overrides, args.jobs)
    print(table.to_string(index=False, float_format=lambda value: f"{value:.4f}"))
    print(f"the same in DVC: {SHOW_COMMAND}")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--prefix", default="loss", help="experiment names: PREFIX-PRESET")
    parser.add_argument("--jobs", type=int, default=1, help="experiments run at once (default 1)")
    run_stage(parser, main)
