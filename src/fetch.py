"""DVC stage `fetch`: write the dataset named by `data.source` to data/raw/modest.zip."""

from __future__ import annotations

import argparse
import os
import time

from depthseg.data.archive import read_members
from depthseg.core.cli import run_stage, stage_parser
from depthseg.core.params import DOWNLOAD_DIR, RAW_ARCHIVE, Params
from depthseg.data.sources import fetch


def main(params: Params, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    fetch(params.data, RAW_ARCHIVE, DOWNLOAD_DIR, workers=args.workers)
    files = len(read_members(RAW_ARCHIVE))
    megabytes = RAW_ARCHIVE.stat().st_size / 1e6
    print(
        f"fetch: {params.data.source} -> {RAW_ARCHIVE}: {files} files, {megabytes:.1f} MB "
        f"in {time.perf_counter() - started:.1f} s"
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
