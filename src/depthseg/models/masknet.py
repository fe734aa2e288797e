"""MaskNet: the original's small mask-only network, on which it first compared mask losses.

Each input (``bg``, ``bg_fg``) goes through its own 3x3 convolution to 32 channels, ReLU and
BatchNorm; the two are concatenated (64 channels), reduced by a 1x1 convolution to 32, and go
through two 3x3 convolutions (to 64, then 64 to 64), each followed by ReLU and BatchNorm; a 1x1
convolution gives the mask logits. No down-sampling, biases everywhere: 59,745 parameters. The
original's dropout after each block is left out: at its default of 0 it is the identity.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _conv_relu_norm(in_channels: int, out_channels: int) -> nn.Sequential:
    # The original's order (as DSResNet's): normalisation after the activation.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.BatchNorm2d(out_channels),
    )


class MaskNet(nn.Module):
    """Mask logits from a background and the same background with a foreground pasted on.

    ``forward(bg, bg_fg)`` takes two ``N x 3 x H x W`` images of any size and returns
    ``(None, mask_logits)``: no depth (the place DSResNet's depth takes stays empty, so every
    caller unpacks both outputs alike), and ``N x 1 x H x W`` logits before the sigmoid.
    ``width`` scales every channel count as DSResNet's does; 1.0 is the original.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        if not width > 0:  # also rejects NaN
            raise ValueError(f"width must be > 0, got {width}")
        narrow, wide = max(1, round(32 * width)), max(1, round(64 * width))
        self.bg_branch = _conv_relu_norm(3, narrow)
        self.bg_fg_branch = _conv_relu_norm(3, narrow)
        self.merge = nn.Conv2d(2 * narrow, narrow, kernel_size=1)
        self.body = nn.Sequential(_conv_relu_norm(narrow, wide), _conv_relu_norm(wide, wide))
        self.out = nn.Conv2d(wide, 1, kernel_size=1)

    def forward(self, bg: Tensor, bg_fg: Tensor) -> tuple[None, Tensor]:
        if bg.shape != bg_fg.shape or bg.dim() != 4 or bg.shape[1] != 3:
            raise ValueError(
                "bg and bg_fg must be N x 3 x H x W tensors of the same shape, got "
                f"{tuple(bg.shape)} and {tuple(bg_fg.shape)}"
            )
        merged = torch.cat((self.bg_branch(bg), self.bg_fg_branch(bg_fg)), dim=1)
        return None, self.out(self.body(self.merge(merged)))
