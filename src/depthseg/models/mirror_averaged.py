"""Test-time augmentation: predictions averaged over a scene and its mirror image."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MirrorAveraged(nn.Module):
    """A two-input, two-output network (the depth output may be None) whose logits are the mean
    of those for the scenes and for their mirror images (flipped left to right), mirrored back.

    The network learned mirrored scenes too (the geometric augmentation flips), so the two views
    are equally good and their errors partly cancel; the result is mirror-symmetric by
    construction. Both views go through the network as one batch of twice the size.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, bg: Tensor, bg_fg: Tensor) -> tuple[Tensor | None, Tensor]:
        count = len(bg)
        both_views = self.network(torch.cat((bg, bg.flip(-1))), torch.cat((bg_fg, bg_fg.flip(-1))))
        depth, mask = (
            None if logits is None else (logits[:count] + logits[count:].flip(-1)) / 2
            for logits in both_views
        )
        return depth, mask
