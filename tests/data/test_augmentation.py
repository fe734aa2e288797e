"""The augmentation's two halves against albumentations, the original's implementation."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from depthseg.core.params import AugmentParams
from depthseg.data.augmentation import (
    BRIGHTNESS,
    CONTRAST,
    HUE_SHIFT,
    SATURATION_SHIFT,
    VALUE_SHIFT,
    GeometricChange,
    PhotometricChange,
    affine_theta,
    axis_aligned_grid,
)
from depthseg.data.draws import DRAW_NAMES, scene_draws
from depthseg.data.transforms import MASK_CHANNEL

SIZE = 64


def _smooth_scene(seed: int) -> torch.Tensor:
    """1x8xHxW floats in [0, 1] that vary slowly (so bilinear resampling errs little), with a
    binary mask of a disc."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    channels = [
        0.5 + 0.4 * np.sin(2 * np.pi * (rng.uniform(0.5, 1.5) * x + rng.uniform(0.5, 1.5) * y))
        for _ in range(MASK_CHANNEL)
    ]
    channels.append(((x - 0.4) ** 2 + (y - 0.6) ** 2 < 0.06).astype(float))
    return torch.tensor(np.stack(channels)[None], dtype=torch.float32)


@pytest.mark.parametrize(
    ("flip", "scale", "shift"),
    [
        (False, (1.1, 1.1), (4 / SIZE, -2 / SIZE)),
        (True, (0.9, 1.05), (-3 / SIZE, 3 / SIZE)),
        (True, (1.0, 1.0), (0.0, 0.0)),
    ],
)
def test_the_warp_is_albumentations_flip_then_affine(
    flip: bool, scale: tuple[float, float], shift: tuple[float, float]
) -> None:
    scene = _smooth_scene(0)
    warped = scene.clone()
    GeometricChange.warp(
        warped, torch.tensor([0]), torch.tensor([flip]), torch.tensor([scale]),
        torch.tensor([shift]),
    )  # fmt: skip
    (scale_x, scale_y), (shift_x, shift_y) = scale, shift
    original = A.Compose([
        A.HorizontalFlip(p=1.0 if flip else 0.0),
        A.Affine(
            scale={"x": (scale_x, scale_x), "y": (scale_y, scale_y)},
            translate_percent={"x": (shift_x, shift_x), "y": (shift_y, shift_y)},
            border_mode=cv2.BORDER_REFLECT_101, interpolation=cv2.INTER_LINEAR,
            mask_interpolation=cv2.INTER_NEAREST, p=1.0,
        ),
    ], seed=0)  # fmt: skip
    image = scene[0, :3].permute(1, 2, 0).numpy()
    mask = scene[0, MASK_CHANNEL].numpy().astype(np.uint8)
    expected = original(image=image, mask=mask)
    # The borders differ by design: grid_sample reflects about the edge, OpenCV about the edge
    # pixel (BORDER_REFLECT_101), a pixel apart; inside they are the same warp. (Shifts are whole
    # pixels here: albumentations rounds them to pixels, grid_sample does not need to.)
    inner = slice(8, -8)
    ours = warped[0, :3].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours[inner, inner], expected["image"][inner, inner], atol=2e-3)
    our_mask = warped[0, MASK_CHANNEL].numpy()
    assert set(np.unique(our_mask)) <= {0.0, 1.0}
    assert (our_mask[inner, inner] != expected["mask"][inner, inner]).mean() < 0.01


@pytest.mark.parametrize(("height", "width"), [(64, 64), (96, 96), (40, 72)])
def test_the_grid_is_affine_grids_for_flips_scales_and_shifts(height: int, width: int) -> None:
    generator = torch.Generator().manual_seed(height + width)
    flip = torch.rand(6, generator=generator) < 0.5
    scale = 0.8 + 0.4 * torch.rand(6, 2, generator=generator)
    shift = 0.2 * torch.rand(6, 2, generator=generator) - 0.1
    theta = affine_theta(flip, scale, shift)
    expected = F.affine_grid(theta, [6, 1, height, width], align_corners=False)
    grid = axis_aligned_grid(theta, height, width)
    assert grid.shape == expected.shape
    torch.testing.assert_close(grid, expected, rtol=0, atol=1e-6)


def test_the_warp_moves_every_channel_alike_and_only_the_rows_asked() -> None:
    scene = _smooth_scene(1)
    scene[0, 1:MASK_CHANNEL] = scene[0, 0]  # images and depth alike
    batch = torch.cat([scene, scene])
    GeometricChange.warp(
        batch, torch.tensor([1]), torch.tensor([True]), torch.tensor([[1.2, 1.1]]),
        torch.tensor([[0.1, 0.1]]),
    )  # fmt: skip
    assert torch.equal(batch[0], scene[0])
    moved = batch[1]
    assert not torch.allclose(moved[0], scene[0, 0], atol=0.05)
    assert all(torch.equal(moved[channel], moved[0]) for channel in range(1, MASK_CHANNEL))


def test_photometric_changes_stay_in_the_originals_ranges() -> None:
    """On mid grey, hue and saturation cannot act: value moves by up to VALUE_SHIFT, then
    contrast and brightness scale and move it; bg and bg_fg alike."""
    change = PhotometricChange(AugmentParams(photometric_p=1.0))
    grey = np.full((8, 8, 3), 128, np.uint8)
    levels = []
    for index in range(300):
        bg, bg_fg = change((grey, grey.copy()), scene_draws(0, 0, index))
        np.testing.assert_array_equal(bg, bg_fg)
        assert (bg == bg[0, 0]).all()
        levels.append(int(bg[0, 0, 0]))
    lowest = (128 - VALUE_SHIFT) * (1 - CONTRAST) - BRIGHTNESS * 255
    highest = (128 + VALUE_SHIFT) * (1 + CONTRAST) + BRIGHTNESS * 255
    assert np.floor(lowest) <= min(levels) < lowest + 20
    assert np.ceil(highest) >= max(levels) > highest - 20


def test_photometric_changes_are_albumentations_own_on_each_image() -> None:
    """Lookup tables on the two images stacked: the same pixels as albumentations' transforms on
    each, for every value of every channel, with a shift of 0 (which albumentations leaves out)
    among them."""
    change = PhotometricChange(AugmentParams(photometric_p=0.7))
    rng = np.random.default_rng(0)
    changed = 0
    for index in range(300):
        images = tuple(rng.integers(0, 256, (32, 24, 3), dtype=np.uint8) for _ in range(2))
        for image in images:  # grey pixels (saturation 0) too
            image[:4] = image[:4, :, :1]
        draws = scene_draws(3, 0, index)
        if index % 20 < 4:  # HSV drawn with no shift at all, or none of one channel
            unshifted = [["hue", "saturation", "value"], ["hue"], ["saturation"], ["value"]]
            draws[[DRAW_NAMES.index(name) for name in unshifted[index % 20]]] = 0.5
            draws[DRAW_NAMES.index("hsv")] = 0.0
        expected = list(images)
        if draws[DRAW_NAMES.index("hsv")] < 0.7:
            hue, saturation, value = (
                2 * draws[DRAW_NAMES.index(name)] - 1 for name in ("hue", "saturation", "value")
            )
            hsv = A.HueSaturationValue(HUE_SHIFT, SATURATION_SHIFT, VALUE_SHIFT, p=1)
            shifts = (hue * HUE_SHIFT, saturation * SATURATION_SHIFT, value * VALUE_SHIFT)
            expected = [hsv.apply(image, *shifts) for image in expected]
        if draws[DRAW_NAMES.index("brightness_contrast")] < 0.7:
            alpha = 1 + (2 * draws[DRAW_NAMES.index("contrast")] - 1) * CONTRAST
            beta = (2 * draws[DRAW_NAMES.index("brightness")] - 1) * BRIGHTNESS * 255
            adjust = A.RandomBrightnessContrast(BRIGHTNESS, CONTRAST, p=1)
            expected = [adjust.apply(image, alpha, beta) for image in expected]
        result = change(images, draws)
        assert [image.shape for image in result] == [(32, 24, 3), (32, 24, 3)]
        for got, want in zip(result, expected, strict=True):
            np.testing.assert_array_equal(got, want)
        changed += not np.array_equal(result[0], images[0])
    assert changed > 200


def test_photometric_changes_are_drawn_with_their_probability() -> None:
    change = PhotometricChange(AugmentParams(photometric_p=0.5))
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[...] = (150, 90, 60)
    unchanged = sum(
        np.array_equal(change((colour, colour), scene_draws(0, 0, index))[0], colour)
        for index in range(400)
    )
    # Neither transform drawn: a quarter of the scenes (binomial, 400 draws: sd 8.7).
    assert 100 - 35 < unchanged < 100 + 35
