"""data.decoding: OpenCV's fast JPEG path gives Pillow's pixels exactly; other images and broken
ones go through Pillow."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from conftest import Files, encode_png
from PIL import Image

from depthseg.data.decoding import decode_image, resized
from depthseg.data.image_header import ImageError, jpeg_frame
from depthseg.synthetic.encoding import jpeg


def pillow_reference(data: bytes, size: int, mode: str) -> np.ndarray:
    """What the loader decoded before OpenCV's path: Pillow's draft, then the same resize."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft(mode, (size, size))
        return resized(np.asarray(image.convert(mode)), size)


def textured(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, channels), dtype=np.uint8)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-20, 21, smooth.shape if channels > 1 else (height, width))
    return np.clip(smooth.reshape(noise.shape) + noise, 0, 255).astype(np.uint8)


def assert_same_as_pillow(data: bytes, sizes: tuple[int, ...] = (28, 32, 64, 96, 160)) -> None:
    for size in sizes:
        for mode in ("RGB", "L"):
            decoded = decode_image(data, size, mode, "scene.jpg")
            expected = pillow_reference(data, size, mode)
            assert decoded.dtype == np.uint8 and decoded.shape == expected.shape
            assert np.array_equal(decoded, expected), (size, mode)


@pytest.mark.parametrize(("height", "width"), [(224, 224), (240, 320), (97, 150)])
def test_built_in_jpegs_decode_to_pillows_pixels_at_every_size(height: int, width: int) -> None:
    assert_same_as_pillow(jpeg(textured(height, width)))
    assert_same_as_pillow(jpeg(textured(height, width, channels=1)))


def test_real_modest_jpegs_decode_to_pillows_pixels(modest_mini_files: Files) -> None:
    images = [data for name, data in sorted(modest_mini_files.items()) if name.endswith(".jpeg")]
    assert len(images) >= 40
    for data in images[::4]:
        assert_same_as_pillow(data, sizes=(64, 96, 160))


def test_jpeg_frame_reads_width_height_and_components() -> None:
    assert jpeg_frame(jpeg(textured(97, 150))) == (150, 97, 3)
    assert jpeg_frame(jpeg(textured(40, 30, channels=1))) == (30, 40, 1)
    assert jpeg_frame(encode_png(textured(40, 30))) is None
    assert jpeg_frame(jpeg(textured(40, 30))[:20]) is None


def test_exif_orientation_is_ignored_as_pillow_ignores_it() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees": OpenCV would turn the image by default
    buffer = io.BytesIO()
    Image.fromarray(textured(64, 128)).save(buffer, "JPEG", quality=95, exif=exif)
    decoded = decode_image(buffer.getvalue(), 64, "RGB", "rotated.jpg")
    assert np.array_equal(decoded, pillow_reference(buffer.getvalue(), 64, "RGB"))


def test_png_and_cmyk_jpeg_go_through_pillow() -> None:
    png = encode_png(textured(64, 64))
    assert np.array_equal(decode_image(png, 32, "RGB", "a.png"), pillow_reference(png, 32, "RGB"))
    buffer = io.BytesIO()
    Image.fromarray(textured(64, 64)).convert("CMYK").save(buffer, "JPEG", quality=95)
    cmyk = buffer.getvalue()
    assert jpeg_frame(cmyk) == (64, 64, 4)
    assert np.array_equal(decode_image(cmyk, 32, "RGB", "c.jpg"), pillow_reference(cmyk, 32, "RGB"))


def test_a_truncated_jpeg_says_so_and_names_the_image() -> None:
    data = jpeg(textured(224, 224))
    with pytest.raises(ImageError, match=r"^bg_fg/x\.jpg: cannot decode .*truncated"):
        decode_image(data[: len(data) // 2], 96, "RGB", "bg_fg/x.jpg")


@pytest.mark.parametrize(("side", "size", "interpolation"), [
    (112, 96, cv2.INTER_LINEAR), (224, 160, cv2.INTER_LINEAR), (80, 96, cv2.INTER_LINEAR),
    (191, 96, cv2.INTER_LINEAR), (200, 96, cv2.INTER_AREA), (640, 96, cv2.INTER_AREA),
])  # fmt: skip
def test_resize_is_bilinear_under_2x_and_averages_beyond(
    side: int, size: int, interpolation: int
) -> None:
    pixels = textured(side, side)
    expected = cv2.resize(pixels, (size, size), interpolation=interpolation)
    other = cv2.INTER_AREA if interpolation == cv2.INTER_LINEAR else cv2.INTER_LINEAR
    assert np.array_equal(resized(pixels, size), expected)
    assert not np.array_equal(expected, cv2.resize(pixels, (size, size), interpolation=other))


def test_a_long_side_that_shrinks_twice_is_averaged() -> None:
    pixels = textured(100, 200)
    assert np.array_equal(
        resized(pixels, 96), cv2.resize(pixels, (96, 96), interpolation=cv2.INTER_AREA)
    )
    assert resized(textured(96, 96), 96).shape == (96, 96, 3)
