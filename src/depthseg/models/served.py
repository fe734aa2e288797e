"""DSResNet in the one-input, one-output form that MLflow's PyTorch flavour serves."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from depthseg.models.dsresnet import DSResNet


class PackedDSResNet(nn.Module):
    """DSResNet with one input and one output, the form MLflow's PyTorch flavour serves.

    Input ``N x 6 x H x W``: normalised ``bg`` channels, then normalised ``bg_fg`` channels.
    Output ``N x 2 x H x W``: depth in [0, 1], then the mask probability.
    """

    def __init__(self, model: DSResNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, scene: Tensor) -> Tensor:
        depth_logits, mask_logits = self.model(scene[:, :3], scene[:, 3:])
        return torch.sigmoid(torch.cat((depth_logits, mask_logits), dim=1))
