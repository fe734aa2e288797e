"""The training loop's MLflow record: a callback that logs every epoch."""

from __future__ import annotations

from depthseg.engine.callbacks import EpochReport
from depthseg.engine.loop import Trainer
from depthseg.engine.preview import evenly_spaced, predict_scenes
from depthseg.tracking import service


def log_epoch(trainer: Trainer, report: EpochReport) -> None:
    """Per-epoch MLflow record: metrics, and predictions on fixed validation scenes."""
    service.log_metrics(report.metrics(), step=report.epoch)
    indices = evenly_spaced(len(trainer.val_set), trainer.config.preview_images)
    if len(indices):
        grid = predict_scenes(trainer.model, trainer.val_set, indices, trainer.setup)
        service.log_image(grid, key="val_predictions", step=report.epoch)
