"""What every stage script shares: params loading, overrides and error reporting."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from depthseg.core.errors import DepthsegError
from depthseg.core.params import PARAMS_FILE, Params
from depthseg.core.params_file import load_params
from depthseg.core.secrets import redact


def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--params", type=Path, default=PARAMS_FILE, help="params file (default: %(default)s)"
    )
    parser.add_argument(
        "-S",
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override params for this run, e.g. -S train.epochs=2 (repeatable; one value may "
        "hold several, space-separated); under DVC prefer `dvc exp run -S`, which records them",
    )
    return parser


def add_workers_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--workers N``: processes for ``what``; the machine's CPU count by default."""
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help=f"processes {what} (default: %(default)s)",
    )


def run_stage(
    parser: argparse.ArgumentParser, main: Callable[[Params, argparse.Namespace], None]
) -> None:
    """Parse arguments, validate params, run ``main``; report bad input in one message."""
    args = parser.parse_args()

    def job() -> None:
        overrides = [item for text in args.overrides for item in shlex.split(text)]
        main(load_params(args.params, overrides), args)

    report_errors(job)


def report_errors(job: Callable[[], None]) -> None:
    """Run ``job``; bad input ends the program with its one-line message (passwords masked) and
    exit status 2."""
    try:
        job()
    except DepthsegError as error:
        print(f"error: {redact(str(error))}", file=sys.stderr)
        sys.exit(2)
