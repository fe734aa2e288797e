"""Loss and metrics of a model over a whole split: validation in training, the evaluate stage."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader

from depthseg.engine.compute import ComputeSetup, TrainingError, probability
from depthseg.engine.distributed import ONE_PROCESS, ProcessGroup
from depthseg.objectives.losses import JointLoss
from depthseg.objectives.metrics import SegDepthMetrics


@dataclass
class SplitResult:
    loss: float
    metrics: dict[str, float]
    #: One row per scene evaluated, with its dataset ``index`` (when asked).
    per_image: list[dict[str, float]] = field(default_factory=list)
    #: Scenes left out because an image could not be read (``train.on_bad_image: skip``).
    skipped: int = 0


def evaluate_split(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: JointLoss,
    setup: ComputeSetup,
    per_image: bool = False,
    group: ProcessGroup = ONE_PROCESS,
    predicts_depth: bool = True,
) -> SplitResult:
    """Loss and metrics over a whole split (and per image when asked); the depth metrics only
    when the model ``predicts_depth``.

    When each process of ``group`` evaluates a share of the split (DDP), loss and metrics are
    those of the whole split.
    """
    model.eval()
    metrics = SegDepthMetrics(depth=predicts_depth)
    images: list[dict[str, float]] = []
    total_loss, samples, skipped = 0.0, 0, 0
    for batch in loader:
        skipped += batch["skipped"]
        if "scenes" not in batch:  # every scene of the batch was skipped
            continue
        bg, bg_fg, depth, mask = setup.inputs(batch)
        with torch.no_grad(), setup.autocast():
            depth_logits, mask_logits = model(bg, bg_fg)
            loss, _ = loss_fn(depth_logits, mask_logits, depth, mask)
        total_loss += loss.item() * len(bg)
        samples += len(bg)
        mask_prob = torch.sigmoid(mask_logits.float())
        rows = metrics.update(probability(depth_logits), depth, mask_prob, mask)
        if per_image:
            images += [
                {"index": index, **row} for index, row in zip(batch["index"], rows, strict=True)
            ]
    total_loss, samples, skipped = group.summed(total_loss, samples, skipped)
    samples, skipped = int(samples), int(skipped)
    metrics.merge(group.all_reduce_sum)
    if samples == 0:
        raise TrainingError(f"no scene of the split could be read ({skipped} skipped)")
    return SplitResult(total_loss / samples, metrics.compute(), images, skipped)
