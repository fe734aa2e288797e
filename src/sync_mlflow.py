"""Log into MLflow what a training could not log while the tracking store was down.

train keeps those calls in models/checkpoints/mlflow_backlog.jsonl (metrics, tags, artifacts,
prediction images, the run's end); once the store answers again, this logs them into the same run
and removes the backlog.
"""

from __future__ import annotations

import argparse

from depthseg.core.cli import run_stage, stage_parser
from depthseg.core.params import Params
from depthseg.core.paths import MLFLOW_BACKLOG
from depthseg.tracking import outage
from depthseg.tracking.service import connect


def main(params: Params, args: argparse.Namespace) -> None:
    if not MLFLOW_BACKLOG.is_file():
        print(f"sync_mlflow: nothing to log ({MLFLOW_BACKLOG} does not exist)")
        return
    connect(params.tracking)
    count = outage.replay(MLFLOW_BACKLOG)
    print(f"sync_mlflow: logged {count} calls from {MLFLOW_BACKLOG}")


if __name__ == "__main__":
    run_stage(stage_parser(__doc__), main)
