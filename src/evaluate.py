"""DVC stage `evaluate`: metrics, per-image scores and prediction images on the test split."""

from __future__ import annotations

import argparse

from depthseg.core.cli import run_stage, stage_parser
from depthseg.core.params import Params
from depthseg.objectives.metrics import headline
from depthseg.stages.evaluate import evaluate


def main(params: Params, args: argparse.Namespace) -> None:
    metrics = evaluate(params)
    print(
        f"evaluate: {metrics['scenes']} {params.evaluate.split} scenes at {metrics['image_size']} "
        f"px: {headline(metrics)}"
    )


if __name__ == "__main__":
    run_stage(stage_parser(__doc__), main)
