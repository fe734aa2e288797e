"""LR range test (params.yaml `lr_find`) on the indexed data; needs `dvc repro index`.

The lr grows exponentially from lr_find.start_lr to lr_find.end_lr over lr_find.iterations
batches of the train stage's own model, loss, optimizer and data; the test stops when the loss
diverges. Prints the suggested lr and writes results/lr_find/ (curve.csv, curve.png,
summary.json); --apply writes the suggestion into params.yaml as train.optimizer.lr.
"""

from __future__ import annotations

import argparse

from depthseg.core.cli import run_stage, stage_parser
from depthseg.core.params import Params
from depthseg.core.paths import LR_FIND_RESULTS
from depthseg.stages.lr_find import LR_KEY, lr_find


def main(params: Params, args: argparse.Namespace) -> None:
    result = lr_find(params, args.params, apply=args.apply)
    stop = "the loss diverged" if result.diverged else "the range ended"
    print(
        f"lr_find: {len(result.curve)} iterations ({stop}); suggested lr "
        f"{result.suggested_lr:.2g} (steepest descent), lowest loss at {result.min_loss_lr:.2g}; "
        f"curve in {LR_FIND_RESULTS}/"
    )
    if args.apply:
        print(f"lr_find: set {LR_KEY} to {result.suggested_lr:.2g} in {args.params}")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument(
        "--apply", action="store_true", help=f"write the suggested lr into params.yaml ({LR_KEY})"
    )
    run_stage(parser, main)
