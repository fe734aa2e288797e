"""DVC stage `index`: turn the file map of data/raw/modest.zip into a table of scenes."""

from __future__ import annotations

import argparse
import time

from depthseg.core.cli import run_stage, stage_parser, write_json
from depthseg.core.params import INDEX_FILE, INDEX_SUMMARY, RAW_ARCHIVE, Params
from depthseg.data.indexing import build_index, summarize, write_index


def main(params: Params, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    table, problems = build_index(RAW_ARCHIVE, params.index)
    if problems:
        print(f"index: skipped scenes with problems:\n{problems.describe()}")
    write_index(table, INDEX_FILE, RAW_ARCHIVE)
    summary = summarize(table, problems)
    write_json(INDEX_SUMMARY, summary)
    splits = ", ".join(
        f"{split} {summary[f'{split}_scenes']} ({summary[f'{split}_backgrounds']} backgrounds)"
        for split in ("train", "val", "test")
    )
    print(
        f"index: {summary['scenes']} scenes -> {INDEX_FILE}: {splits} "
        f"in {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    run_stage(stage_parser(__doc__), main)
