"""DVC stage `fetch`: write the dataset named by `data.source` to data/raw/modest.zip."""

from __future__ import annotations

import argparse

from depthseg.core.cli import add_workers_option, run_stage, stage_parser
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
    add_workers_option(parser, "generating synthetic scenes")
    run_stage(parser, main)
