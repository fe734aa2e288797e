"""Loss and metrics of a model over a whole split: validation in training, the evaluate stage."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader

from depthseg.engine.compute import ComputeSetup
from depthseg.objectives.losses import JointLoss
from depthseg.objectives.metrics import SegDepthMetrics


@dataclass
class SplitResult:
    loss: float
    metrics: dict[str, float]
    per_image: list[dict[str, float]] = field(default_factory=list)


def evaluate_split(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: JointLoss,
    setup: ComputeSetup,
    per_image: bool = False,
) -> SplitResult:
    """Loss and metrics over a whole split (and per image when asked)."""
    model.eval()
    metrics = SegDepthMetrics()
    images: list[dict[str, float]] = []
    total_loss, samples = 0.0, 0
    for batch in loader:
        bg, bg_fg, depth, mask = setup.inputs(batch)
        with torch.no_grad(), setup.autocast():
            depth_logits, mask_logits = model(bg, bg_fg)
            loss, _ = loss_fn(depth_logits, mask_logits, depth, mask)
        total_loss += loss.item() * len(bg)
        samples += len(bg)
        rows = metrics.update(
            torch.sigmoid(depth_logits.float()), depth, torch.sigmoid(mask_logits.float()), mask
        )
        if per_image:
            images += rows
    return SplitResult(total_loss / samples, metrics.compute(), images)
