"""Depth maps as colour images for people to look at: the training previews, the evaluate
stage's files and the served model's answers all use this one colour map."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps

_DEPTH_COLOURS = (colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def depth_colours(depth: np.ndarray) -> np.ndarray:
    """Depth in [0, 1] as RGB uint8 in the magma colour map, dark = near."""
    return _DEPTH_COLOURS[(np.clip(depth, 0, 1) * 255).round().astype(np.uint8)]
