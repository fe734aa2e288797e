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
    grid = predict_scenes(trainer.model, trainer.val_set, indices, report.image_size, trainer.setup)
    if grid is not None:
        service.log_image(grid, key="val_predictions", step=report.epoch)


def log_missed_epochs(history: list[EpochReport]) -> list[int]:
    """Log the epochs of a resumed run that its checkpoint holds and its MLflow run lacks (a
    kill between the two); return their numbers."""
    logged = service.logged_steps("val_loss")
    missed = [report for report in history if report.epoch not in logged]
    for report in missed:
        service.log_metrics(report.metrics(), step=report.epoch)
    return [report.epoch for report in missed]
