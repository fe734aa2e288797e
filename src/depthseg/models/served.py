"""DSResNet on raw images: the form that prediction, MLflow serving and ONNX export share."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ServedDSResNet(nn.Module):
    """DSResNet (plain or ``MirrorAveraged``) that takes decoded images as they are and answers
    at their size.

    Inputs: ``bg`` and ``bg_fg``, uint8 ``N x H x W x 3`` RGB; the two may differ in size.
    Outputs: the mask probability and the depth in [0, 1], float32 ``N x H x W`` at the size of
    ``bg_fg``. Inside, each input is resized to ``image_size`` (the size the weights were trained
    and chosen at: the network sees scenes at the scale it learned) and normalised with its own
    statistics; the predictions are resized back.
    """

    def __init__(
        self,
        model: nn.Module,
        image_size: int,
        bg_stats: tuple[tuple[float, ...], tuple[float, ...]],
        bg_fg_stats: tuple[tuple[float, ...], tuple[float, ...]],
    ) -> None:
        super().__init__()
        self.model = model
        self.image_size = image_size
        for name, (mean, std) in (("bg", bg_stats), ("bg_fg", bg_fg_stats)):
            self.register_buffer(f"{name}_mean", torch.tensor(mean).view(1, 3, 1, 1))
            self.register_buffer(f"{name}_std", torch.tensor(std).view(1, 3, 1, 1))

    def _network_input(self, images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        scaled = images.permute(0, 3, 1, 2).float() / 255.0
        # Antialiased like the training data's area resize, so a large photo is not aliased.
        size = (self.image_size, self.image_size)
        resized = F.interpolate(scaled, size=size, mode="bilinear", antialias=True)
        return (resized - mean) / std

    def forward(self, bg: Tensor, bg_fg: Tensor) -> tuple[Tensor, Tensor]:
        depth_logits, mask_logits = self.model(
            self._network_input(bg, self.bg_mean, self.bg_std),
            self._network_input(bg_fg, self.bg_fg_mean, self.bg_fg_std),
        )
        probabilities = torch.sigmoid(torch.cat((mask_logits, depth_logits), dim=1).float())
        full = F.interpolate(probabilities, size=bg_fg.shape[1:3], mode="bilinear")
        return full[:, 0], full[:, 1]
