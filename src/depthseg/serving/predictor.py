"""A trained model that predicts masks and depths of decoded image pairs, batch by batch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from depthseg.data import layout
from depthseg.engine.checkpoints import load_trained
from depthseg.engine.compute import select_device
from depthseg.models.served import ServedDSResNet


@dataclass(frozen=True)
class Prediction:
    """At the size of the scene image: the mask probability and the depth, both in [0, 1]."""

    probability: np.ndarray
    depth: np.ndarray


def served_network(model: nn.Module, image_size: int) -> ServedDSResNet:
    """``model`` wrapped to take raw images, normalised with the release's statistics."""
    return ServedDSResNet(
        model, image_size, (layout.BG_MEAN, layout.BG_STD), (layout.BG_FG_MEAN, layout.BG_FG_STD)
    ).eval()


def load_network(weights: Path, card: Path) -> ServedDSResNet:
    """The served network of trained weights, at the size their card says they were kept at."""
    model, details = load_trained(weights, card)
    return served_network(model, details["image_size"])


def _batches(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], size: int
) -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
    """Consecutive pairs whose bg and scene shapes match the batch's first, ``size`` at most."""
    batch: list[tuple[np.ndarray, np.ndarray]] = []
    for pair in pairs:
        shapes = (pair[0].shape, pair[1].shape)
        if batch and (len(batch) == size or shapes != (batch[0][0].shape, batch[0][1].shape)):
            yield batch
            batch = []
        batch.append(pair)
    if batch:
        yield batch


class Predictor:
    """Predictions of a served network on one device, in batches of pairs of equal sizes."""

    def __init__(self, network: ServedDSResNet, device: str = "auto") -> None:
        self.device = select_device(device)
        self.network = network.to(self.device).eval()

    @property
    def image_size(self) -> int:
        return self.network.image_size

    @torch.inference_mode()
    def predict(
        self, pairs: Iterable[tuple[np.ndarray, np.ndarray]], batch_size: int = 16
    ) -> Iterator[Prediction]:
        """One prediction per (bg, bg_fg) pair of ``H x W x 3`` uint8 RGB arrays, in order."""
        for batch in _batches(pairs, batch_size):
            bg = torch.from_numpy(np.stack([pair[0] for pair in batch])).to(self.device)
            bg_fg = torch.from_numpy(np.stack([pair[1] for pair in batch])).to(self.device)
            probability, depth = self.network(bg, bg_fg)
            for mask_i, depth_i in zip(probability.cpu().numpy(), depth.cpu().numpy(), strict=True):
                yield Prediction(mask_i, depth_i)
