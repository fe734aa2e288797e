"""The parts a training is built from, as params.yaml says: loss, optimizer, lr schedule."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from depthseg.core.params import LossParams, OptimizerParams, TrainParams
from depthseg.engine.compute import TrainingError
from depthseg.objectives.losses import LOSS_PRESETS, JointLoss, LossWeights


def loss_weights(params: LossParams) -> LossWeights:
    if params.preset is not None:
        return LOSS_PRESETS[params.preset]
    return LossWeights(
        depth_rmse=params.depth.rmse,
        depth_ssim=params.depth.ssim,
        mask_bce=params.mask.bce,
        mask_dice=params.mask.dice,
        mask_ssim=params.mask.ssim,
    )


def build_loss(params: LossParams) -> JointLoss:
    return JointLoss(loss_weights(params))


def build_optimizer(model: nn.Module, spec: OptimizerParams) -> torch.optim.Optimizer:
    parameters = model.parameters()
    if spec.name == "sgd":
        return torch.optim.SGD(
            parameters, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
        )
    optimizer = torch.optim.Adam if spec.name == "adam" else torch.optim.AdamW
    return optimizer(parameters, lr=spec.lr, weight_decay=spec.weight_decay)


class LRSchedule:
    """The lr scheduler of ``train.scheduler`` and when it steps.

    OneCycle steps after every batch; step and plateau after every epoch (plateau on the
    validation loss); ``none`` never. The loop reports both events; this class alone decides.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, params: TrainParams, steps_per_epoch: int
    ) -> None:
        spec = params.scheduler
        self.per_batch = spec.name == "onecycle"
        self.on_loss = spec.name == "plateau"
        self.scheduler: Any = None
        if spec.name == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, factor=0.1, patience=spec.patience, min_lr=spec.min_lr
            )
        elif spec.name == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(
                optimizer, step_size=spec.step_epochs, gamma=spec.gamma
            )
        elif spec.name == "onecycle":
            total_steps = params.epochs * steps_per_epoch
            # OneCycleLR divides by the length of its warm-up phase: keep it two steps or more.
            pct_start = max(spec.pct_start, 2 / total_steps)
            if pct_start >= 1:
                raise TrainingError(
                    f"train.scheduler.name 'onecycle' needs more than {total_steps} steps: "
                    "raise train.epochs or lower train.batch_size"
                )
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=params.optimizer.lr, total_steps=total_steps, pct_start=pct_start
            )

    def batch_done(self) -> None:
        if self.per_batch:
            self._advance(None)

    def epoch_done(self, val_loss: float) -> None:
        if not self.per_batch:
            self._advance(val_loss)

    def _advance(self, val_loss: float | None) -> None:
        if self.scheduler is None:
            return
        if self.on_loss:
            self.scheduler.step(val_loss)
        else:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any] | None:
        return self.scheduler.state_dict() if self.scheduler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)
