"""DSResNet on raw images: the form that prediction, MLflow serving and ONNX export share."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def shrunk(images: Tensor, size: int) -> Tensor:
    """uint8 ``N x H x W x 3`` images as ``N x 3 x size x size``, antialiased (as the training
    data's area resize is, so a large photo is not aliased).

    On the CPU the resize runs in uint8: a large image never exists as floats, which would take
    4 bytes a channel. CUDA has no uint8 antialiased kernel, so there it resizes floats.
    """
    channels_first = images.permute(0, 3, 1, 2)
    if channels_first.shape[-2:] == (size, size):
        return channels_first
    if images.device.type != "cpu":
        channels_first = channels_first.float()
    return F.interpolate(channels_first, size=(size, size), mode="bilinear", antialias=True)


class ServedDSResNet(nn.Module):
    """DSResNet (plain or ``MirrorAveraged``) that takes decoded images as they are and answers
    at their size.

    Inputs: ``bg`` and ``bg_fg``, uint8 ``N x H x W x 3`` RGB; the two may differ in size.
    Outputs: the mask probability and the depth in [0, 1], float32 ``N x H x W`` at the size of
    ``bg_fg``. Inside, each input is shrunk to ``image_size`` (the size the weights were trained
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
        return (shrunk(images, self.image_size).float() / 255.0 - mean) / std

    def probabilities(self, bg: Tensor, bg_fg: Tensor) -> Tensor:
        """``N x 2 x image_size x image_size``: the mask probability, then the depth."""
        depth_logits, mask_logits = self.model(
            self._network_input(bg, self.bg_mean, self.bg_std),
            self._network_input(bg_fg, self.bg_fg_mean, self.bg_fg_std),
        )
        return torch.sigmoid(torch.cat((mask_logits, depth_logits), dim=1).float())

    def forward(self, bg: Tensor, bg_fg: Tensor) -> tuple[Tensor, Tensor]:
        return at_size(self.probabilities(bg, bg_fg), bg_fg.shape[1:3])


def at_size(probabilities: Tensor, size: tuple[int, int] | torch.Size) -> tuple[Tensor, Tensor]:
    """``probabilities`` (``N x 2 x h x w``) resized to ``size``: (mask, depth), ``N x H x W``."""
    full = F.interpolate(probabilities, size=tuple(size), mode="bilinear")
    return full[:, 0], full[:, 1]
