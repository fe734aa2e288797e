"""The original's two loss studies, one DVC experiment per loss, on the same data and budget,
compared on the test split:

- ``COMBINED``: its three combined losses (``loss.preset``) on DSResNet;
- ``MASK_ONLY``: first, mask prediction alone on its small MaskNet, with BCE, SSIM and Dice each
  alone; the model is registered apart (``registry.model_name`` with ``-masknet``) and ranked by
  mask IoU, since it predicts no depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from depthseg.core.params import LOSS_PRESET_NAMES
from depthseg.experiments.dvc_cli import experiment_table, queue, run_queue

#: The mask losses of the mask-only study, each trained alone.
MASK_LOSSES = ("bce", "ssim", "dice")


@dataclass(frozen=True)
class LossStudy:
    #: What each experiment is called after the prefix, and the params that make it that loss.
    losses: dict[str, dict[str, Any]]
    #: Params every experiment of the study sets (the user's overrides come after them).
    common: dict[str, Any]
    #: The params that tell its experiments apart, and the metrics they are compared on.
    params: list[str]
    metrics: list[str]
    #: The table's order: the best first.
    sort_by: str
    ascending: bool

    def names(self, prefix: str) -> list[str]:
        return [f"{prefix}-{loss}" for loss in self.losses]

    @property
    def show_command(self) -> str:
        """The same columns in `dvc exp show`, for looking again later."""
        columns = "|".join(["Experiment", *self.params, *self.metrics, "train_seconds"])
        return f"dvc exp show --drop '.*' --keep '{columns}'"


COMBINED = LossStudy(
    losses={preset: {"loss.preset": preset} for preset in LOSS_PRESET_NAMES},
    common={},
    params=["loss.preset"],
    metrics=["mask_iou", "mask_dice", "depth_rmse", "depth_mae", "depth_delta1"],
    sort_by="depth_rmse",
    ascending=True,
)
MASK_ONLY = LossStudy(
    losses={
        loss: {f"loss.mask.{name}": float(name == loss) for name in MASK_LOSSES}
        for loss in MASK_LOSSES
    },
    common={
        "model.name": "masknet",
        "loss.preset": None,
        "loss.depth.rmse": 0.0,
        "loss.depth.ssim": 0.0,
        "registry.score": "mask_iou",
    },
    params=[f"loss.mask.{name}" for name in MASK_LOSSES],
    metrics=["mask_iou", "mask_dice", "mask_soft_iou"],
    sort_by="mask_iou",
    ascending=False,
)


def loss_study(
    study: LossStudy, prefix: str, overrides: dict[str, Any], jobs: int = 1
) -> pd.DataFrame:
    """Queue one experiment per loss of ``study`` (with ``overrides``), run them, return their
    table, the best first."""
    names = study.names(prefix)
    for name, loss_params in zip(names, study.losses.values(), strict=True):
        queue(name, {**study.common, **overrides, **loss_params})
    run_queue(names, jobs)
    table = experiment_table(names, study.params, study.metrics)
    return table.sort_values(study.sort_by, ascending=study.ascending).reset_index(drop=True)
