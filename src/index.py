"""DVC stage `index`: turn the file map of data/raw/modest.zip into a table of scenes."""

from __future__ import annotations

import argparse
import time

from depthseg.core.cli import add_workers_option, run_stage, stage_parser
from depthseg.core.params import Params
from depthseg.core.paths import INDEX_FILE
from depthseg.stages.index import index


def main(params: Params, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    summary, problems = index(params, args.workers)
    if problems:
        print(f"index: skipped scenes with problems:\n{problems.describe()}")
    splits = ", ".join(
        f"{split} {summary[f'{split}_scenes']} ({summary[f'{split}_backgrounds']} backgrounds)"
        for split in ("train", "val", "test")
    )
    print(
        f"index: {summary['scenes']} scenes -> {INDEX_FILE}: {splits} "
        f"in {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    add_workers_option(parser, "decoding images with index.verify: decode")
    run_stage(parser, main)
