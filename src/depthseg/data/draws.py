"""Each scene's augmentation draws: the uniforms that decide which transforms it gets and how far.

They come from the scene's own generator, seeded by the run's seed, the epoch and the scene's
row, so they are the same whatever the batch, the number of workers or the device. The loader
worker draws them once and sends them with the scene (see ``augmentation`` for what they do), so
the training process, which feeds the device alone, does no per-scene work for them.
"""

from __future__ import annotations

import numpy as np

#: The uniform draws in [0, 1) each scene takes, in this order, used or not.
DRAW_NAMES = (
    "flip", "affine", "scale_x", "scale_y", "shift_x", "shift_y",
    "hsv", "hue", "saturation", "value",
    "brightness_contrast", "contrast", "brightness",
)  # fmt: skip
#: Each draw's place in a scene's draws (a column of a batch's).
DRAW_COLUMN = {name: column for column, name in enumerate(DRAW_NAMES)}


def scene_draws(seed: int, epoch: int, index: int) -> np.ndarray:
    """The len(DRAW_NAMES) float32 uniforms of scene ``index`` in ``epoch``."""
    return np.random.default_rng([seed, epoch, index]).random(len(DRAW_NAMES)).astype(np.float32)
