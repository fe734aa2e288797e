"""DVC stage `train`: train DSResNet on the index's train split; record it in MLflow."""

from __future__ import annotations

import argparse

from depthseg.core.cli import run_stage, stage_parser
from depthseg.core.params import Params
from depthseg.stages.train import train


def main(params: Params, args: argparse.Namespace) -> None:
    metrics = train(params, args.params)
    if metrics is None:  # a torchrun process other than rank 0
        return
    best = metrics["best"]
    print(
        f"train: {metrics['model_parameters']:,} parameters, best epoch {metrics['best_epoch']}: "
        f"val mask IoU {best['val_mask_iou']:.4f}, val depth RMSE {best['val_depth_rmse']:.4f} "
        f"({metrics['train_seconds']:.0f} s)"
    )


if __name__ == "__main__":
    run_stage(stage_parser(__doc__), main)
