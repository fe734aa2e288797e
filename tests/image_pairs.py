"""Seeded random (bg, bg_fg) input pairs for the network tests."""

from __future__ import annotations

import torch


def random_pair(
    batch: int, height: int, width: int, requires_grad: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two ``batch x 3 x height x width`` normal tensors, the same for the same arguments."""
    generator = torch.Generator().manual_seed(0)
    bg, bg_fg = (
        torch.randn(batch, 3, height, width, generator=generator, requires_grad=requires_grad)
        for _ in range(2)
    )
    return bg, bg_fg
