"""DVC stage `fetch`: write the dataset named by `data.source` to data/raw/modest.zip."""

from __future__ import annotations

import argparse
import os

from depthseg.core.cli import run_stage, stage_parser
from depthseg.core.params import Params
from depthseg.core.paths import RAW_ARCHIVE
from depthseg.stages.fetch import fetch


def main(params: Params, args: argparse.Namespace) -> None:
    done = fetch(params, args.workers)
    print(
        f"fetch: {params.data.source} -> {RAW_ARCHIVE}: {done['files']} files, "
        f"{done['megabytes']:.1f} MB in {done['seconds']:.1f} s"
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes generating synthetic scenes (default: %(default)s)",
    )
    run_stage(parser, main)
