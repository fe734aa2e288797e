"""DSResNet: a two-input residual U-Net that predicts a depth map and a foreground mask.

The background (``bg``) and the scene (``bg_fg``) first go through two encoder blocks each, with
separate weights; their 1/4-resolution maps are merged and encoded down to 1/32 resolution. Two
decoders with the same shape and separate weights (depth, mask) climb back up, taking the shared
encoder skips and, in their last two blocks, the skips of both input branches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Five 2x poolings bring the input to 1/32 of its size; every level must stay an integer.
SIZE_MULTIPLE = 32


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1)


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    # The reference order is conv -> ReLU -> BatchNorm (normalisation after the activation).
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.BatchNorm2d(out_channels),
        nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.BatchNorm2d(out_channels),
    )


class ResidualBlock(nn.Module):
    """y = doubleconv(x) + conv1x1(x)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = _double_conv(in_channels, out_channels)
        self.shortcut = _conv1x1(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


class EncoderBlock(nn.Module):
    """A residual block that returns ``(maxpool2(y), y)``; ``y`` is the skip for the decoder."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = ResidualBlock(in_channels, out_channels)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        skip = self.block(x)
        return F.max_pool2d(skip, kernel_size=2), skip


class DecoderBlock(nn.Module):
    """Upsample ``conv1x1(x)`` by 2, concatenate the skip(s), then a residual block.

    Several skips are concatenated and reduced to ``out_channels`` by a 1x1 conv first; a single
    skip is used as is.
    """

    def __init__(self, in_channels: int, out_channels: int, skip_channels: tuple[int, ...]) -> None:
        super().__init__()
        self.project = _conv1x1(in_channels, out_channels)
        self.reduce_skips: nn.Conv2d | None = None
        merged_skip_channels = skip_channels[0]
        if len(skip_channels) > 1:
            self.reduce_skips = _conv1x1(sum(skip_channels), out_channels)
            merged_skip_channels = out_channels
        self.block = ResidualBlock(out_channels + merged_skip_channels, out_channels)

    def forward(self, x: Tensor, skips: tuple[Tensor, ...]) -> Tensor:
        # Projecting before upsampling is the reference order and 4x cheaper than after.
        x = F.interpolate(self.project(x), scale_factor=2, mode="bilinear", align_corners=False)
        skip = skips[0] if self.reduce_skips is None else self.reduce_skips(torch.cat(skips, dim=1))
        return self.block(torch.cat((x, skip), dim=1))


class DecoderHead(nn.Module):
    """Five decoder blocks from 1/32 back to full resolution, then a 1x1 conv to one channel."""

    def __init__(self, channels: dict[int, int]) -> None:
        super().__init__()
        c = channels
        self.up16 = DecoderBlock(c[512], c[256], (c[256],))
        self.up8 = DecoderBlock(c[256], c[128], (c[128],))
        self.up4 = DecoderBlock(c[128], c[64], (c[64],))
        self.up2 = DecoderBlock(c[64], c[32], (c[32], c[32]))
        self.up1 = DecoderBlock(c[32], c[16], (c[16], c[16]))
        self.out = _conv1x1(c[16], 1)

    def forward(
        self,
        bottleneck: Tensor,
        shared_skips: tuple[Tensor, Tensor, Tensor],
        branch_skips_half: tuple[Tensor, Tensor],
        branch_skips_full: tuple[Tensor, Tensor],
    ) -> Tensor:
        skip_quarter, skip_eighth, skip_sixteenth = shared_skips
        x = self.up16(bottleneck, (skip_sixteenth,))
        x = self.up8(x, (skip_eighth,))
        x = self.up4(x, (skip_quarter,))
        x = self.up2(x, branch_skips_half)
        x = self.up1(x, branch_skips_full)
        return self.out(x)


class InputBranch(nn.Module):
    """Two encoder blocks for one input: full -> 1/4 resolution, with both skips."""

    def __init__(self, channels: dict[int, int]) -> None:
        super().__init__()
        self.enc1 = EncoderBlock(3, channels[16])
        self.enc2 = EncoderBlock(channels[16], channels[32])

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return ``(quarter, skip_half, skip_full)``."""
        half, skip_full = self.enc1(image)
        quarter, skip_half = self.enc2(half)
        return quarter, skip_half, skip_full


class DSResNet(nn.Module):
    """Depth and mask from a background and the same background with a foreground pasted on.

    ``forward(bg, bg_fg)`` takes two ``N x 3 x H x W`` images (H, W multiples of 32) and returns
    ``(depth_logits, mask_logits)``, each ``N x 1 x H x W`` before the sigmoid.
    ``width`` scales every channel count (``max(1, round(c * width))``); 1.0 is the reference.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        if not width > 0:  # also rejects NaN
            raise ValueError(f"width must be > 0, got {width}")
        c = {base: max(1, round(base * width)) for base in (16, 32, 64, 128, 256, 512)}
        self.bg_branch = InputBranch(c)
        self.bg_fg_branch = InputBranch(c)
        self.merge = _conv1x1(2 * c[32], c[32])
        self.enc_quarter = EncoderBlock(c[32], c[64])
        self.enc_eighth = EncoderBlock(c[64], c[128])
        self.enc_sixteenth = EncoderBlock(c[128], c[256])
        # The reference's last encoder block is pooled too but the pooled map is never used,
        # so this level is a plain residual block (same parameters, no wasted pooling).
        self.bottleneck = ResidualBlock(c[256], c[512])
        self.depth_head = DecoderHead(c)
        self.mask_head = DecoderHead(c)

    def forward(self, bg: Tensor, bg_fg: Tensor) -> tuple[Tensor, Tensor]:
        _check_inputs(bg, bg_fg)
        bg_quarter, bg_half, bg_full = self.bg_branch(bg)
        scene_quarter, scene_half, scene_full = self.bg_fg_branch(bg_fg)
        x = self.merge(torch.cat((bg_quarter, scene_quarter), dim=1))
        x, skip_quarter = self.enc_quarter(x)
        x, skip_eighth = self.enc_eighth(x)
        x, skip_sixteenth = self.enc_sixteenth(x)
        bottleneck = self.bottleneck(x)
        shared_skips = (skip_quarter, skip_eighth, skip_sixteenth)
        half_skips = (bg_half, scene_half)
        full_skips = (bg_full, scene_full)
        depth = self.depth_head(bottleneck, shared_skips, half_skips, full_skips)
        mask = self.mask_head(bottleneck, shared_skips, half_skips, full_skips)
        return depth, mask


def _check_inputs(bg: Tensor, bg_fg: Tensor) -> None:
    if bg.shape != bg_fg.shape:
        raise ValueError(
            f"bg and bg_fg must have the same shape, got {tuple(bg.shape)} and {tuple(bg_fg.shape)}"
        )
    if bg.dim() != 4 or bg.shape[1] != 3:
        raise ValueError(f"inputs must be N x 3 x H x W, got {tuple(bg.shape)}")
    height, width = bg.shape[-2:]
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(
            f"input size {height}x{width} is not supported: height and width must be "
            f"multiples of {SIZE_MULTIPLE} (the encoder halves the size five times)"
        )
