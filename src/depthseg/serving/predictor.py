"""A trained model that predicts masks and depths of decoded image pairs, batch by batch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from depthseg.core.params import predicts_depth
from depthseg.data import layout
from depthseg.engine.checkpoints import load_trained
from depthseg.engine.compute import select_device
from depthseg.models.served import DEPTH_OUTPUT, ServedNetwork, at_size, shrunk
from depthseg.serving.images import ScaledImage


@dataclass(frozen=True)
class Prediction:
    """At the size of the scene image: the mask probability and the depth (None from a network
    without a depth output), both in [0, 1]."""

    probability: np.ndarray
    depth: np.ndarray | None


def served_network(model: nn.Module, image_size: int, depth: bool = True) -> ServedNetwork:
    """``model`` wrapped to take raw images, normalised with the release's statistics; ``depth``:
    whether it predicts depth."""
    return ServedNetwork(
        model,
        image_size,
        (layout.BG_MEAN, layout.BG_STD),
        (layout.BG_FG_MEAN, layout.BG_FG_STD),
        predicts_depth=depth,
    ).eval()


def load_network(weights: Path, card: Path) -> ServedNetwork:
    """The served network of trained weights, at the size their card says they were kept at."""
    model, details = load_trained(weights, card)
    return served_network(model, details["image_size"], predicts_depth(details["model"]))


def _batches(
    pairs: Iterable[tuple[ScaledImage, ScaledImage]], size: int, image_size: int
) -> Iterator[list[tuple[Tensor, Tensor, tuple[int, int]]]]:
    """Up to ``size`` pairs at a time, each image shrunk to ``image_size`` as soon as it is
    decoded (so only one full-size image is held at a time), with the size of its scene."""
    batch: list[tuple[Tensor, Tensor, tuple[int, int]]] = []
    for bg, bg_fg in pairs:
        bg_small, scene_small = (
            shrunk(torch.from_numpy(image.pixels[None]), image_size)[0] for image in (bg, bg_fg)
        )
        batch.append((bg_small, scene_small, (bg_fg.height, bg_fg.width)))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class Predictor:
    """Predictions of a served network on one device, in batches of pairs."""

    def __init__(self, network: ServedNetwork, device: str = "auto") -> None:
        self.device = select_device(device)
        self.network = network.to(self.device).eval()

    @property
    def image_size(self) -> int:
        return self.network.image_size

    @property
    def predicts_depth(self) -> bool:
        return DEPTH_OUTPUT in self.network.outputs

    @torch.inference_mode()
    def predict(
        self, pairs: Iterable[tuple[ScaledImage, ScaledImage]], batch_size: int = 16
    ) -> Iterator[Prediction]:
        """One prediction per (bg, bg_fg) pair, in order, at the size of the scene image."""
        for batch in _batches(pairs, batch_size, self.image_size):
            # Channels last, as a stack of N x H x W x 3 images is.
            bg, bg_fg = (
                torch.stack([item[index] for item in batch]).permute(0, 2, 3, 1).to(self.device)
                for index in (0, 1)
            )
            probabilities = self.network.probabilities(bg, bg_fg)
            for item, scene in zip(batch, probabilities, strict=True):
                # One scene at a time at its full size: a batch of large scenes would add up.
                mask, *depth = (output[0].cpu().numpy() for output in at_size(scene[None], item[2]))
                yield Prediction(mask, depth[0] if depth else None)
