"""A trained network on raw images: the form that prediction, MLflow serving and ONNX export
share."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def shrunk(images: Tensor, size: int) -> Tensor:
    """uint8 ``N x H x W x 3`` images as ``N x 3 x size x size``, antialiased, so a large photo
    is not aliased (training images are averaged too: by a JPEG's reduced decoding or an area
    resize, before a last bilinear step under 2x; see ``data.decoding.resized``).

    On the CPU the resize runs in uint8: a large image never exists as floats, which would take
    4 bytes a channel. CUDA has no uint8 antialiased kernel, so there it resizes floats.
    """
    channels_first = images.permute(0, 3, 1, 2)
    if channels_first.shape[-2:] == (size, size):
        return channels_first
    if images.device.type != "cpu":
        channels_first = channels_first.float()
    return F.interpolate(channels_first, size=(size, size), mode="bilinear", antialias=True)


#: The served outputs, in the order of ``ServedNetwork.probabilities``' channels.
MASK_OUTPUT, DEPTH_OUTPUT = "mask_probability", "depth"


class ServedNetwork(nn.Module):
    """A network (plain or ``MirrorAveraged``) that takes decoded images as they are and answers
    at their size.

    Inputs: ``bg`` and ``bg_fg``, uint8 ``N x H x W x 3`` RGB; the two may differ in size.
    Outputs (``outputs`` names them): the mask probability and, for a network that predicts
    depth, the depth, in [0, 1], float32 ``N x H x W`` at the size of ``bg_fg``. Inside, each
    input is shrunk to ``image_size`` (the size the weights were trained and chosen at: the
    network sees scenes at the scale it learned) and normalised with its own statistics; the
    predictions are resized back.
    """

    def __init__(
        self,
        model: nn.Module,
        image_size: int,
        bg_stats: tuple[tuple[float, ...], tuple[float, ...]],
        bg_fg_stats: tuple[tuple[float, ...], tuple[float, ...]],
        predicts_depth: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        self.image_size = image_size
        self.outputs = (MASK_OUTPUT, DEPTH_OUTPUT) if predicts_depth else (MASK_OUTPUT,)
        for name, (mean, std) in (("bg", bg_stats), ("bg_fg", bg_fg_stats)):
            self.register_buffer(f"{name}_mean", torch.tensor(mean).view(1, 3, 1, 1))
            self.register_buffer(f"{name}_std", torch.tensor(std).view(1, 3, 1, 1))

    def _network_input(self, images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        return (shrunk(images, self.image_size).float() / 255.0 - mean) / std

    def probabilities(self, bg: Tensor, bg_fg: Tensor) -> Tensor:
        """``N x len(outputs) x image_size x image_size``: the mask probability, then the depth
        if the network predicts it."""
        depth_logits, mask_logits = self.model(
            self._network_input(bg, self.bg_mean, self.bg_std),
            self._network_input(bg_fg, self.bg_fg_mean, self.bg_fg_std),
        )
        if (depth_logits is not None) != (DEPTH_OUTPUT in self.outputs):
            raise ValueError(f"the network's outputs are not the served {self.outputs}")
        logits = (mask_logits,) if depth_logits is None else (mask_logits, depth_logits)
        return torch.sigmoid(torch.cat(logits, dim=1).float())

    def forward(self, bg: Tensor, bg_fg: Tensor) -> tuple[Tensor, ...]:
        return at_size(self.probabilities(bg, bg_fg), bg_fg.shape[1:3])


def at_size(probabilities: Tensor, size: tuple[int, int] | torch.Size) -> tuple[Tensor, ...]:
    """``probabilities`` (``N x C x h x w``) resized to ``size``: one ``N x H x W`` tensor per
    channel (see ``ServedNetwork.outputs``)."""
    full = F.interpolate(probabilities, size=tuple(size), mode="bilinear")
    return tuple(full.unbind(1))
