"""The original's loss study: its three combined losses trained on the same data and budget,
one DVC experiment each, compared on the test split."""

from __future__ import annotations

from typing import Any

import pandas as pd

from depthseg.core.params import LOSS_PRESET_NAMES
from depthseg.experiments.dvc_cli import experiment_table, queue, run_queue

METRICS = ["mask_iou", "mask_dice", "depth_rmse", "depth_mae", "depth_delta1"]
#: The same columns in `dvc exp show`, for looking again later.
SHOW_COMMAND = (
    "dvc exp show --drop '.*' --keep "
    "'Experiment|loss.preset|mask_iou|mask_dice|depth_rmse|depth_mae|depth_delta1|train_seconds'"
)


def experiment_names(prefix: str) -> list[str]:
    return [f"{prefix}-{preset}" for preset in LOSS_PRESET_NAMES]


def loss_study(prefix: str, overrides: dict[str, Any], jobs: int = 1) -> pd.DataFrame:
    """Queue one experiment per preset (with ``overrides``), run them, return their table."""
    names = experiment_names(prefix)
    for name, preset in zip(names, LOSS_PRESET_NAMES, strict=True):
        queue(name, {**overrides, "loss.preset": preset})
    run_queue(names, jobs)
    table = experiment_table(names, ["loss.preset"], METRICS)
    return table.sort_values("depth_rmse").reset_index(drop=True)
