"""What the loop tells its callers after every epoch (MLflow logging, Optuna pruning)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from depthseg.engine.preview import Preview


@dataclass
class EpochReport:
    epoch: int
    image_size: int
    lr: float
    train_loss: float
    val_loss: float
    val: dict[str, float]
    samples_per_s: float
    seconds: float
    skipped_scenes: int = 0  # train and val scenes whose images could not be read

    def metrics(self) -> dict[str, float]:
        """Flat metrics of the epoch, as MLflow and the history file record them."""
        return {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            **{f"val_{name}": value for name, value in self.val.items()},
            "lr": self.lr,
            "image_size": self.image_size,
            "samples_per_s": self.samples_per_s,
            "epoch_seconds": self.seconds,
            "skipped_scenes": self.skipped_scenes,
        }

    def summary(self, epochs: int, kept: bool) -> str:
        """One line for the log, printed even where no bar is drawn (``dvc repro > log``)."""
        mark = " (kept)" if kept else ""
        rmse = f", val RMSE {self.val['depth_rmse']:.4f}" if "depth_rmse" in self.val else ""
        return (
            f"epoch {self.epoch}/{epochs} at {self.image_size} px: train loss "
            f"{self.train_loss:.4f}, val loss {self.val_loss:.4f}, val IoU "
            f"{self.val['mask_iou']:.4f}{rmse}, "
            f"{self.samples_per_s:.1f} samples/s, {self.seconds:.0f} s{mark}"
        )


#: Called with the epoch's report and its preview after each epoch has been checkpointed.
EpochCallback = Callable[[EpochReport, "Preview"], None]
