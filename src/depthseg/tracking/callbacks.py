"""The training loop's MLflow record: a callback that logs every epoch into a run."""

from __future__ import annotations

from depthseg.engine.callbacks import EpochCallback, EpochReport
from depthseg.engine.preview import Preview
from depthseg.tracking.service import TrackedRun


def epoch_logger(run: TrackedRun) -> EpochCallback:
    """The callback that records each epoch in ``run``: metrics, and predictions on fixed
    validation scenes."""

    def log_epoch(report: EpochReport, preview: Preview) -> None:
        run.log_metrics(report.metrics(), step=report.epoch)
        grid = preview.grid(report.image_size)
        if grid is not None:
            run.log_image(grid, key="val_predictions", step=report.epoch)

    return log_epoch


def log_missed_epochs(run: TrackedRun, history: list[EpochReport]) -> list[int]:
    """Log the epochs of a resumed run that its checkpoint holds and its MLflow run lacks (a
    kill between the two); return their numbers."""
    logged = run.logged_steps("val_loss")
    missed = [report for report in history if report.epoch not in logged]
    for report in missed:
        run.log_metrics(report.metrics(), step=report.epoch)
    return [report.epoch for report in missed]
