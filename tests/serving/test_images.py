"""Images in every form a user has, and predictions written as PNGs."""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np
import pytest
from conftest import LIMITS
from PIL import Image, ImageOps

from depthseg.data.image_header import ImageError, ImageTooLarge
from depthseg.serving.images import (
    ImageInputError,
    depth_image,
    encoded_bytes,
    mask_image,
    png,
    read_rgb,
    sheet,
)


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16", "CMYK"])
def test_any_mode_is_read_as_rgb(mode: str) -> None:
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    data = encoded(Image.new(mode, (30, 20)), fmt)
    image = read_rgb(data, "image", LIMITS)
    assert image.pixels.shape == (20, 30, 3) and image.pixels.dtype == np.uint8
    assert (image.height, image.width) == (20, 30)


def test_bytes_and_base64_give_the_same_pixels() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(pixels))
    for value in (data, base64.b64encode(data).decode()):
        decoded = read_rgb(encoded_bytes(value, "image", LIMITS), "image", LIMITS)
        np.testing.assert_array_equal(decoded.pixels, pixels)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_camera_photo_is_turned_upright_as_pillow_turns_it(orientation: int) -> None:
    pixels = np.random.default_rng(orientation).integers(0, 256, (10, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(Image.fromarray(pixels), "PNG", exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    image = read_rgb(data, "photo", LIMITS)
    np.testing.assert_array_equal(image.pixels, upright)
    assert (image.height, image.width) == upright.shape[:2]


def test_a_large_jpeg_decodes_small_and_keeps_its_own_size() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (1200, 1000, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise: upright, 1000 high and 1200 wide
    data = encoded(Image.fromarray(pixels), "JPEG", exif=exif)
    image = read_rgb(data, "photo", LIMITS, at_least=96)
    assert (image.height, image.width) == (1000, 1200)
    assert image.pixels.shape == (125, 150, 3)  # 1/8 scale: still at least 96 a side


def test_bad_input_names_what_was_wrong() -> None:
    with pytest.raises(ImageInputError, match="row 3 bg: a text value must be a base64"):
        encoded_bytes("not base64!", "row 3 bg", LIMITS)
    with pytest.raises(ImageInputError, match="row 1 bg_fg: expected an encoded PNG or JPEG"):
        encoded_bytes(12, "row 1 bg_fg", LIMITS)
    with pytest.raises(ImageError, match=r"broken\.jpg: not an image of an accepted format"):
        read_rgb(b"\xff\xd8 truncated", "broken.jpg", LIMITS)
    truncated = encoded(Image.new("RGB", (64, 64)), "PNG")[:60]
    with pytest.raises(ImageError, match=r"cut\.png: not an image that can be decoded"):
        read_rgb(truncated, "cut.png", LIMITS)


def test_an_image_over_the_limits_is_refused_by_its_header() -> None:
    data = encoded(Image.new("L", (3000, 2000)), "PNG")
    small = LIMITS.model_copy(update={"image_pixels": 5_000_000})
    with pytest.raises(
        ImageTooLarge,
        match=r"big\.png \(3,000 x 2,000\) is 6,000,000 pixels, over the limit of 5,000,000 "
        r"pixels \(limits\.image_pixels\)",
    ):
        read_rgb(data, "big.png", small)
    with pytest.raises(ImageTooLarge, match=r"limits\.image_bytes"):
        encoded_bytes(
            base64.b64encode(data).decode(),
            "row 0 bg",
            small.model_copy(update={"image_bytes": 100}),
        )


def test_predictions_become_8_and_16_bit_pngs() -> None:
    depth = np.linspace(0, 1, 50, dtype=np.float32).reshape(5, 10)
    decoded = cv2.imdecode(np.frombuffer(png(depth_image(depth)), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint16 and decoded[0, 0] == 0 and decoded[-1, -1] == 65535
    mask = cv2.imdecode(np.frombuffer(png(mask_image(depth)), np.uint8), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(mask)) == {0, 255} and (mask == 255).sum() == (depth >= 0.5).sum()
    # A probability of exactly one half is background, as in the evaluate stage's IoU.
    assert mask_image(np.array([[0.5, 0.5001]])).tolist() == [[0, 255]]
    scene = np.full((5, 10, 3), 7, np.uint8)
    board = sheet(scene, depth, depth)
    assert board.shape == (5, 30, 3)
    np.testing.assert_array_equal(board[:, :10], scene)
