"""DVC stage `train`: train model.name on the index's train split; record it in MLflow."""

from __future__ import annotations

import argparse
import sys

from depthseg.core.cli import run_stage, stage_parser
from depthseg.core.params import Params
from depthseg.engine.distributed import ProcessGroup, run_in_processes
from depthseg.objectives.metrics import headline
from depthseg.stages.train import train


def main(params: Params, args: argparse.Namespace) -> None:
    processes = params.train.processes
    if processes > 1 and not ProcessGroup.from_env().distributed:
        sys.exit(run_in_processes(processes, __file__, sys.argv[1:]))
    metrics = train(params, args.params)
    if metrics is None:  # a torchrun process other than rank 0
        return
    best = metrics["best"]
    print(
        f"train: {metrics['model_parameters']:,} parameters, best epoch {metrics['best_epoch']}: "
        f"{headline(best, 'val_')} ({metrics['train_seconds']:.0f} s)"
    )


if __name__ == "__main__":
    run_stage(stage_parser(__doc__), main)
