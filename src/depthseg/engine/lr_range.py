"""The LR range test: train with an lr that grows exponentially, watch the loss, suggest an lr.

As the original project ran it (Smith 2017): from ``start_lr`` to ``end_lr`` over ``iterations``
batches, one optimizer step each; the loss is smoothed by an exponential moving average with bias
correction, and the test stops early once the smoothed loss exceeds ``diverge_factor`` times its
minimum. The suggested lr is where the smoothed loss falls fastest against log(lr).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from depthseg.core.params import LRFindParams
from depthseg.engine.compute import TrainingError
from depthseg.engine.loop import Trainer


@dataclass
class RangeTestResult:
    curve: pd.DataFrame  # iteration, lr, loss, smoothed_loss
    suggested_lr: float  # steepest descent of the smoothed loss
    min_loss_lr: float  # lr of the lowest smoothed loss
    diverged: bool

    def summary(self) -> dict[str, float | int | bool]:
        return {
            "suggested_lr": self.suggested_lr,
            "min_loss_lr": self.min_loss_lr,
            "iterations_run": len(self.curve),
            "diverged": self.diverged,
        }


def lr_at(iteration: int, config: LRFindParams) -> float:
    """``start * (end / start) ** (i / (n - 1))``: exponential from start to end."""
    ratio = config.end_lr / config.start_lr
    return config.start_lr * ratio ** (iteration / (config.iterations - 1))


def steepest_descent(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The lr where ``d loss / d log(lr)`` is most negative, ignoring the first and last tenth
    (the start is noise, the end is divergence)."""
    skip = max(1, len(lrs) // 10)
    lrs, losses = lrs[skip:-skip], losses[skip:-skip]
    if len(lrs) < 3:
        raise TrainingError(
            "the LR range test stopped after too few iterations to suggest an lr: raise "
            "lr_find.iterations or lr_find.diverge_factor, or lower lr_find.start_lr"
        )
    slopes = np.gradient(losses, np.log(lrs))
    return float(lrs[int(np.argmin(slopes))])


def _batches(trainer: Trainer, image_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Training batches without end: a new shuffled epoch whenever one runs out."""
    epoch = 1
    while True:
        yield from trainer.train_batches(epoch, image_size)
        epoch += 1


def range_test(trainer: Trainer, config: LRFindParams) -> RangeTestResult:
    """Run the test on ``trainer``'s model, loss, optimizer and training data (changing them)."""
    trainer.model.train()
    beta = 1 - config.smoothing
    average, best = 0.0, math.inf
    rows: list[tuple[int, float, float, float]] = []
    diverged = False
    batches = _batches(trainer, config.image_size)
    for iteration in range(config.iterations):
        lr = lr_at(iteration, config)
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr
        loss = trainer.step(next(batches)).item()
        if not math.isfinite(loss):
            diverged = True
            break
        average = beta * average + (1 - beta) * loss
        smoothed = average / (1 - beta ** (iteration + 1))
        rows.append((iteration + 1, lr, loss, smoothed))
        best = min(best, smoothed)
        if smoothed > config.diverge_factor * best:
            diverged = True
            break
    curve = pd.DataFrame(rows, columns=["iteration", "lr", "loss", "smoothed_loss"])
    lrs, smoothed_losses = curve["lr"].to_numpy(), curve["smoothed_loss"].to_numpy()
    return RangeTestResult(
        curve=curve,
        suggested_lr=steepest_descent(lrs, smoothed_losses),
        min_loss_lr=float(lrs[int(np.argmin(smoothed_losses))]),
        diverged=diverged,
    )
