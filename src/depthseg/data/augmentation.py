"""The training augmentation: the original's transforms, split where each is cheapest.

The original ran one albumentations pipeline per scene in a loader worker (flip, affine, HSV,
brightness/contrast); its per-scene calls cost the loader more than decoding. Here the same
transforms, with the same kinds, ranges and probabilities, run in two places:

- ``PhotometricChange``, per scene in the loader worker, on the decoded uint8 images: the
  pixels of albumentations' HueSaturationValue and RandomBrightnessContrast, each a lookup table
  per channel, made by albumentations' own functions on the 256 values and applied to both
  images in one OpenCV call (two thirds of the time of albumentations' transforms);
- ``GeometricChange``, per batch on the training device, on the float scenes: flip and affine as
  one ``grid_sample`` of the scenes that drew them (a 4-image warp is the costly part, and a GPU
  does it for almost nothing).

Photometric changes apply identically to ``bg`` and ``bg_fg`` (so their difference still marks the
person) and never to the labels; geometric changes apply jointly to all four images, so the mask
and the depth map stay aligned with the inputs. They are pointwise, so it does not matter that
they come before the warp rather than after it, as in the original.

Both do what each scene's draws (``draws.scene_draws``) say, so a scene is changed the same way
whatever the batch, the number of workers or the device.
"""

from __future__ import annotations

import albucore
import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from depthseg.core.params import AugmentParams
from depthseg.data.draws import DRAW_COLUMN
from depthseg.data.transforms import MASK_CHANNEL

#: The original's fixed settings: affine's probability, and albumentations'
#: HueSaturationValue(10, 15, 10) (on uint8: hue in OpenCV's 0..180, saturation and value in
#: 0..255) and RandomBrightnessContrast(0.15, 0.15) (brightness a fraction of 255).
AFFINE_P = 0.5
HUE_SHIFT = 10
SATURATION_SHIFT = 15
VALUE_SHIFT = 10
CONTRAST = 0.15
BRIGHTNESS = 0.15


def _spread(uniform: np.ndarray | Tensor, half_range: float) -> np.ndarray | Tensor:
    """[0, 1) -> [-half_range, half_range)."""
    return (2 * uniform - 1) * half_range


#: Every uint8 value once: a pointwise function applied to it gives its lookup table.
_VALUES = np.arange(256, dtype=np.uint8)[None, :]
#: OpenCV's hues of uint8 HSV lie in 0..179.
_HUES = 180


def _hsv_table(hue_shift: float, saturation_shift: float, value_shift: float) -> np.ndarray:
    """1x256x3 lookup table of the hue, saturation and value channels: albumentations'
    ``shift_hsv`` between its two colour conversions (grey, saturation 0, stays grey)."""
    hue = np.mod(_VALUES.astype(np.int16) + hue_shift, _HUES).astype(np.uint8)
    saturation = albucore.add_constant(_VALUES, saturation_shift)
    saturation[0, 0] = 0
    value = albucore.add_constant(_VALUES, value_shift)
    return np.dstack([hue, saturation, value])


class PhotometricChange:
    """Hue/saturation/value and brightness/contrast of a scene's two RGB images, as its draws
    say (uint8 in and out), in the loader worker: albumentations' pixels, for less.

    Both transforms are pointwise per channel, so each is a lookup table of 256 entries, made
    by albumentations' own functions (``HueSaturationValue`` between the colour conversions it
    makes); the two images go through each OpenCV call stacked. Shifts reach albumentations as
    Python floats, as its own draws do: NumPy scalars take other, slower paths through it.
    """

    def __init__(self, params: AugmentParams) -> None:
        self.p = params.photometric_p
        self.brightness_contrast = A.RandomBrightnessContrast(BRIGHTNESS, CONTRAST, p=1)

    @staticmethod
    def wanted(params: AugmentParams) -> bool:
        return params.photometric

    def __call__(
        self, images: tuple[np.ndarray, np.ndarray], draws: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``images`` changed as the scene's ``draws`` (see ``draws.scene_draws``) say."""
        hsv = draws[DRAW_COLUMN["hsv"]] < self.p
        brightness_contrast = draws[DRAW_COLUMN["brightness_contrast"]] < self.p
        if not (hsv or brightness_contrast):
            return images
        stacked = np.concatenate(images, axis=0)
        if hsv:
            shifts = [
                float(_spread(draws[DRAW_COLUMN[name]], half_range))
                for name, half_range in (
                    ("hue", HUE_SHIFT), ("saturation", SATURATION_SHIFT), ("value", VALUE_SHIFT)
                )
            ]  # fmt: skip
            # albumentations returns the image itself, unconverted, when nothing shifts.
            if any(shifts):
                shifted = cv2.LUT(cv2.cvtColor(stacked, cv2.COLOR_RGB2HSV), _hsv_table(*shifts))
                stacked = cv2.cvtColor(shifted, cv2.COLOR_HSV2RGB)
        if brightness_contrast:
            alpha = 1 + float(_spread(draws[DRAW_COLUMN["contrast"]], CONTRAST))
            # RandomBrightnessContrast scales brightness by the maximum value before apply.
            beta = float(_spread(draws[DRAW_COLUMN["brightness"]], BRIGHTNESS)) * 255
            stacked = cv2.LUT(stacked, self.brightness_contrast.apply(_VALUES, alpha, beta))
        height = len(images[0])
        return stacked[:height], stacked[height:]


def affine_theta(flip: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """Kx2x3 sampling matrices (``affine_grid``'s) of a horizontal flip where ``flip``, then a
    zoom about the centre by ``scale`` (Kx2: x, y) and a move by ``shift`` (Kx2: fractions of the
    width and height; the picture moves right and down for positive shifts), as albumentations'
    HorizontalFlip then Affine(scale, translate_percent) with its default keep_ratio=False."""
    theta = torch.zeros(len(scale), 2, 3, device=scale.device)
    mirror = torch.where(flip, -1.0, 1.0)
    scale_x, scale_y = scale.unbind(1)
    theta[:, 0, 0] = mirror / scale_x
    theta[:, 0, 2] = -2 * shift[:, 0] * mirror / scale_x
    theta[:, 1, 1] = 1 / scale_y
    theta[:, 1, 2] = -2 * shift[:, 1] / scale_y
    return theta


def axis_aligned_grid(theta: Tensor, height: int, width: int) -> Tensor:
    """``F.affine_grid(theta, (K, C, height, width), align_corners=False)`` for ``theta`` without
    rotation or shear (as ``affine_theta``'s are): x depends on the column alone and y on the
    row, so each is one line of numbers, spread over the grid. A fifth of affine_grid's time,
    which multiplies every point by its matrix (0.3 against 1.4 ms for 8 scenes at 160 px on
    one CPU thread)."""
    columns = (torch.arange(width, dtype=theta.dtype, device=theta.device) * 2 + 1) / width - 1
    rows = (torch.arange(height, dtype=theta.dtype, device=theta.device) * 2 + 1) / height - 1
    grid = torch.empty(len(theta), height, width, 2, dtype=theta.dtype, device=theta.device)
    grid[..., 0] = (theta[:, 0, 0, None] * columns + theta[:, 0, 2, None])[:, None, :]
    grid[..., 1] = (theta[:, 1, 1, None] * rows + theta[:, 1, 2, None])[:, :, None]
    return grid


class GeometricChange:
    """Flip, then shift and scale, of a float batch of scenes in place (see
    ``transforms.SCENE_CHANNELS``; the mask 0 or 1), on the batch's device."""

    def __init__(self, params: AugmentParams) -> None:
        self.params = params

    @staticmethod
    def wanted(params: AugmentParams) -> bool:
        return params.geometric

    def __call__(self, scenes: Tensor, draws: np.ndarray) -> Tensor:
        """``scenes`` changed as their N x len(draws.DRAW_NAMES) ``draws`` say."""
        params = self.params
        drawn = torch.from_numpy(draws)
        flip = drawn[:, DRAW_COLUMN["flip"]] < params.flip_p
        affine = drawn[:, DRAW_COLUMN["affine"]] < AFFINE_P
        flip_only = (flip & ~affine).nonzero()[:, 0].to(scenes.device)
        if len(flip_only):
            scenes[flip_only] = scenes[flip_only].flip(-1)
        rows = affine.nonzero()[:, 0]
        if not len(rows):
            return scenes
        picked = drawn[rows]
        scale = 1 + _spread(
            picked[:, [DRAW_COLUMN["scale_x"], DRAW_COLUMN["scale_y"]]], params.scale
        )
        shift = _spread(picked[:, [DRAW_COLUMN["shift_x"], DRAW_COLUMN["shift_y"]]], params.shift)
        self.warp(scenes, rows.to(scenes.device), flip[rows], scale, shift)
        return scenes

    @staticmethod
    def warp(scenes: Tensor, rows: Tensor, flip: Tensor, scale: Tensor, shift: Tensor) -> None:
        """Scenes ``rows`` flipped where ``flip``, then scaled and shifted (see ``affine_theta``),
        with the borders reflected."""
        theta = affine_theta(flip, scale, shift).to(scenes.device)
        moved = scenes[rows]
        grid = axis_aligned_grid(theta, *moved.shape[-2:])
        # Bilinear for the labels too (as the original): the mask is made binary again below.
        moved = F.grid_sample(
            moved, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )
        moved[:, MASK_CHANNEL] = (moved[:, MASK_CHANNEL] > 0.5).to(moved.dtype)
        scenes[rows] = moved
