"""A team's servers, measured: what a tracking store costs per epoch, and Optuna trials per
minute for several workers on one study.

Per epoch, a training records its metrics and the prediction grid of the validation previews
(`tracking/callbacks.epoch_logger`); this times that record, image upload included, against each
``--tracking-uri`` (e.g. the local SQLite store and an `mlflow server`). Then, with
``--storage``, 1, 2 and 4 `tune.py` workers run on one new study each, on the tiny budget below,
and the table gives finished trials per minute of wall time (worker start-up included). The
servers are the team's own, started as docs/team.md says.

    dvc repro index && .venv/bin/python benchmarks/bench_team.py \\
        --tracking-uri sqlite:///bench.db --tracking-uri http://127.0.0.1:5000 \\
        --storage postgresql://postgres@127.0.0.1/optuna
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path

import mlflow
import numpy as np
import optuna

from depthseg.core.params import TrackingParams
from depthseg.core.secrets import redact
from depthseg.tracking import service

REPO = Path(__file__).resolve().parents[1]
#: 16 metrics and a grid of 8 preview scenes at 96 px (four images each), as an epoch logs.
METRICS = [f"metric_{index}" for index in range(16)]
GRID_SHAPE = (8 * 96, 4 * 96, 3)
TINY_BUDGET = (
    "tune.budget.epochs=2 tune.budget.image_size=32 tune.budget.train_fraction=0.25 "
    "tune.pruner.name=none"
)


def per_epoch_seconds(uri: str, epochs: int) -> float:
    """Seconds per epoch to log the metrics and the preview grid of ``epochs`` epochs to
    ``uri``, until the store has all of them."""
    service.connect(TrackingParams(tracking_uri=uri, experiment="bench-team"))
    grid = np.random.default_rng(0).integers(0, 256, GRID_SHAPE, dtype=np.uint8)
    with mlflow.start_run() as active:
        run = service.TrackedRun(active.info.run_id)
        start = time.perf_counter()
        for epoch in range(1, epochs + 1):
            run.log_metrics(dict.fromkeys(METRICS, 1.0 / epoch), step=epoch)
            run.log_image(grid, key="val_predictions", step=epoch)
        mlflow.flush_artifact_async_logging()
        elapsed = time.perf_counter() - start
    return elapsed / epochs


def trials_per_minute(storage: str, workers: int, trials_each: int) -> tuple[int, float]:
    """(finished trials, trials per minute) of ``workers`` tune.py processes on a new study."""
    name = f"bench-{workers}-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable, "src/tune.py", "--storage", storage, "--study-name", name,
        "--n-trials", str(trials_each), "-S", TINY_BUDGET,
    ]  # fmt: skip
    start = time.perf_counter()
    processes = [
        subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL) for _ in range(workers)
    ]
    codes = [process.wait() for process in processes]
    elapsed = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"a worker failed (exit codes {codes})")
    study = optuna.load_study(study_name=name, storage=storage)
    done = sum(trial.state == optuna.trial.TrialState.COMPLETE for trial in study.trials)
    return done, done / elapsed * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", action="append", default=[], help="repeatable")
    parser.add_argument("--epochs", type=int, default=20, help="epochs logged per store")
    parser.add_argument("--storage", help="an Optuna storage URL for the worker table")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--trials-per-worker", type=int, default=2)
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    if args.tracking_uri:
        print("\n| tracking store | ms per epoch (metrics + preview grid) |\n|---|---:|")
        for uri in args.tracking_uri:
            print(f"| {redact(uri)} | {per_epoch_seconds(uri, args.epochs) * 1000:.0f} |")
    if args.storage:
        print("\n| workers | trials | trials/min |\n|---:|---:|---:|")
        for workers in args.workers:
            done, rate = trials_per_minute(args.storage, workers, args.trials_per_worker)
            print(f"| {workers} | {done} | {rate:.1f} |")


if __name__ == "__main__":
    main()
