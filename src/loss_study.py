"""The original's loss studies, one DVC experiment per loss, on the same data and budget.

Default: its three combined losses on DSResNet (rmse_bce_dice, ssim_dice, rmse_bce).
--mask-only: its first study, mask prediction alone on MaskNet with BCE, SSIM and Dice each alone
(registered as REGISTRY_NAME-masknet, ranked by mask IoU).

Queues the experiments (the workspace's params, plus the study's, plus any -S overrides, plus
the loss), runs the queue (`dvc exp run --run-all`) and prints their test metrics side by side.
Needs a git repository with a commit; the experiments stay in `dvc exp show`.
"""

from __future__ import annotations

import argparse
import shlex

from depthseg.core.cli import run_stage, stage_parser
from depthseg.core.params import Params
from depthseg.core.params_file import parse_override
from depthseg.experiments.loss_study import COMBINED, MASK_ONLY, loss_study


def main(params: Params, args: argparse.Namespace) -> None:
    study = MASK_ONLY if args.mask_only else COMBINED
    prefix = args.prefix or ("maskloss" if args.mask_only else "loss")
    overrides = dict(parse_override(item) for text in args.overrides for item in shlex.split(text))
    if args.mask_only:
        overrides = {"registry.model_name": f"{params.registry.model_name}-masknet", **overrides}
    print(f"loss study: queueing and running {', '.join(study.names(prefix))}")
    table = loss_study(study, prefix, overrides, args.jobs)
    print(table.to_string(index=False, float_format=lambda value: f"{value:.4f}"))
    print(f"the same in DVC: {study.show_command}")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument(
        "--mask-only", action="store_true", help="the mask-only study on MaskNet (see above)"
    )
    parser.add_argument(
        "--prefix", help="experiment names: PREFIX-LOSS (default: loss, or maskloss)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="experiments run at once (default 1)")
    run_stage(parser, main)
