"""Prediction grids: one row per scene, bg_fg | true mask | predicted mask | true depth | predicted
depth (the last two only for a network that predicts depth), as an RGB uint8 image for MLflow and
the evaluate stage's files."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from depthseg.data.colours import depth_colours
from depthseg.data.dataset import SceneDataset, collate_scenes
from depthseg.data.sampling import SceneKey
from depthseg.data.transforms import part
from depthseg.engine.compute import ComputeSetup


def _rgb(image: torch.Tensor) -> np.ndarray:
    return image.cpu().numpy().transpose(1, 2, 0)


def _grey(values: torch.Tensor) -> np.ndarray:
    grey = (values.detach().float().cpu().clamp(0, 1).numpy()[0] * 255).round().astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _coloured(depth: torch.Tensor) -> np.ndarray:
    return depth_colours(depth.detach().float().cpu().numpy()[0])


def prediction_grid(
    bg_fg: torch.Tensor,
    mask_true: torch.Tensor,
    mask_prob: torch.Tensor,
    depth_true: torch.Tensor,
    depth_pred: torch.Tensor | None,
) -> np.ndarray:
    """Stack one row per scene of the batch; depth in the magma colour map, dark = near.

    ``bg_fg`` is uint8 RGB as the dataset gives it; the rest are floats in [0, 1]. Without a
    ``depth_pred`` the row ends with the predicted mask."""
    rows = [
        np.concatenate(
            [
                _rgb(bg_fg[i]),
                _grey(mask_true[i]),
                _grey(mask_prob[i]),
                *(
                    ()
                    if depth_pred is None
                    else (_coloured(depth_true[i]), _coloured(depth_pred[i]))
                ),
            ],
            axis=1,
        )
        for i in range(len(bg_fg))
    ]
    return np.concatenate(rows, axis=0)


def evenly_spaced(count: int, wanted: int) -> np.ndarray:
    """``wanted`` fixed indices spread over ``count`` items: the scenes shown in grids."""
    return np.unique(np.linspace(0, count - 1, min(wanted, count)).round().astype(int))


def predict_scenes(
    model: nn.Module,
    dataset: SceneDataset,
    indices: np.ndarray,
    image_size: int,
    setup: ComputeSetup,
) -> np.ndarray | None:
    """The prediction grid of the scenes ``indices`` of ``dataset`` read at ``image_size`` (None
    if none is readable)."""
    batch = collate_scenes([dataset[SceneKey(int(i), image_size, 0)] for i in indices])
    if "scenes" not in batch:  # none of them could be read
        return None
    bg, bg_fg, depth, mask = setup.inputs(batch)
    depth_pred, mask_prob = setup.predict(model, bg, bg_fg)
    return prediction_grid(part(batch["scenes"], "bg_fg"), mask, mask_prob, depth, depth_pred)


@dataclass(frozen=True)
class Preview:
    """What an epoch callback may draw: the network's predictions on ``count`` fixed scenes of
    ``scenes`` (the validation split), without reaching into the trainer."""

    model: nn.Module
    scenes: SceneDataset
    count: int
    setup: ComputeSetup

    def grid(self, image_size: int) -> np.ndarray | None:
        """The prediction grid at ``image_size``; None when no scene is wanted or readable."""
        if self.count == 0:
            return None
        indices = evenly_spaced(len(self.scenes), self.count)
        return predict_scenes(self.model, self.scenes, indices, image_size, self.setup)
