"""Images in every form a user has, and predictions written as PNGs."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from depthseg.serving.images import (
    ImageInputError,
    depth_image,
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
    pixels = read_rgb(data)
    assert pixels.shape == (20, 30, 3) and pixels.dtype == np.uint8


def test_bytes_base64_and_files_give_the_same_pixels(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(pixels))
    (tmp_path / "scene.png").write_bytes(data)
    for source in (data, base64.b64encode(data).decode(), tmp_path / "scene.png"):
        np.testing.assert_array_equal(read_rgb(source), pixels)


def test_a_camera_photo_is_turned_upright_by_its_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise
    data = encoded(Image.new("RGB", (40, 10)), "JPEG", exif=exif)
    assert read_rgb(data).shape == (40, 10, 3)


def test_bad_input_names_what_was_wrong(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="row 3 bg: a text value must be a base64"):
        read_rgb("not base64!", "row 3 bg")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ImageInputError, match=r"broken\.jpg: not an image"):
        read_rgb(tmp_path / "broken.jpg")


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
