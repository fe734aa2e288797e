"""Optuna study over loss weights and learning rates (params.yaml `tune`); needs `dvc repro index`.

Every trial is a short training with the train stage's own code, recorded as a nested MLflow run.
Several processes given the same --storage and --study-name share one study.
"""

from __future__ import annotations

import argparse
import sys

from depthseg.core.cli import run_stage, stage_parser
from depthseg.core.params import Params
from depthseg.core.paths import INDEX_FILE, TUNE_RESULTS
from depthseg.data.indexing import read_index
from depthseg.tuning.results import queue_best
from depthseg.tuning.study import run_study


def main(params: Params, args: argparse.Namespace) -> None:
    table, archive_path = read_index(INDEX_FILE)
    try:
        study = run_study(
            params,
            table,
            archive_path,
            study_name=args.study_name,
            storage=args.storage,
            n_trials=args.n_trials if args.n_trials is not None else params.tune.n_trials,
            timeout=args.timeout if args.timeout is not None else params.tune.timeout,
            folder=TUNE_RESULTS,
        )
    except KeyboardInterrupt:
        sys.exit(130)
    if args.queue_best:
        name = queue_best(study)
        if name is None:
            print("tune: no trial completed, nothing to queue")
        else:
            print(f"tune: queued DVC experiment {name}; run it with `dvc exp run --run-all`")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--study-name", help="default: tune.study_name")
    parser.add_argument(
        "--storage",
        help="an Optuna storage URL (sqlite:///optuna.db, postgresql://...) or a .journal file; "
        "default: tune.storage, else sqlite:///optuna.db",
    )
    parser.add_argument("--n-trials", type=int, help="default: tune.n_trials")
    parser.add_argument("--timeout", type=float, help="seconds; default: tune.timeout")
    parser.add_argument(
        "--queue-best",
        action="store_true",
        help="queue the best params as a DVC experiment (full training) when the study ends; "
        "--n-trials 0 queues the best so far without running trials",
    )
    run_stage(parser, main)
