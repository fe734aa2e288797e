"""Images from outside (bytes, base64 text) decoded for the network, and predictions as PNGs.

Every image's header is checked against ``limits`` before a pixel is decoded
(``data.image_header``), and the image is decoded only as large as the network needs: a JPEG at
1/2, 1/4 or 1/8 scale inside libjpeg, so a 50-megapixel photo costs what a 1-megapixel one does.
Other formats decode at full size (3 bytes a pixel, through OpenCV) and the predictor shrinks
them, in uint8, before anything else.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, ImageOps

from depthseg.core.errors import DepthsegError
from depthseg.core.params import LimitsParams
from depthseg.data.colours import depth_colours
from depthseg.data.decoding import jpeg_scale_flag
from depthseg.data.image_header import (
    ACCEPTED_FORMATS,
    DECODE_ERRORS,
    ImageError,
    ImageHeader,
    ImageTooLarge,
    checked_header,
)
from depthseg.objectives.metrics import MASK_THRESHOLD

_ORIENTATION_TAG = 0x0112
#: EXIF orientation -> the numpy view that turns the stored pixels upright (as Pillow's
#: ``exif_transpose``): 2 mirrored, 3 upside down, 4 flipped, 5-8 with width and height swapped.
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
_SIDEWAYS = {5, 6, 7, 8}


class ImageInputError(DepthsegError, ValueError):
    """An input (a request, a file) cannot be used; the message names it."""


class ScaledImage(NamedTuple):
    """An image decoded upright, at least ``at_least`` pixels a side where the format can
    shrink while decoding; ``height`` and ``width`` are those of the image itself."""

    pixels: np.ndarray
    height: int
    width: int


def encoded_bytes(value: object, name: str, limits: LimitsParams) -> bytes:
    """The encoded image in ``value``: bytes as they are, text as base64 (its size checked
    before it is decoded)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if not isinstance(value, str):
        raise ImageInputError(
            f"{name}: expected an encoded PNG or JPEG image (base64 text in JSON), got "
            f"{type(value).__name__}"
        )
    if refusal := limits.exceeded("image_bytes", len(value) // 4 * 3, name):
        raise ImageTooLarge(refusal)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ImageInputError(
            f"{name}: a text value must be a base64-encoded PNG or JPEG file"
        ) from None


def _orientation(data: bytes) -> int:
    """The EXIF orientation (1 when there is none); Pillow reads only the header for it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
                orientation = image.getexif().get(_ORIENTATION_TAG, 1)
    except DECODE_ERRORS:
        return 1
    return orientation if orientation in _UPRIGHT else 1


def _pillow_rgb(data: bytes, name: str, at_least: int) -> np.ndarray:
    """Pillow's decoding, for what OpenCV does not read; it says why a broken file fails."""
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            if at_least:
                image.draft("RGB", (at_least, at_least))
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except DECODE_ERRORS as error:
        raise ImageError(f"{name}: not an image that can be decoded ({error})") from None


def _opencv_rgb(data: bytes, header: ImageHeader, at_least: int) -> np.ndarray | None:
    """OpenCV's decoding, as stored (orientation ignored); None where it cannot decode."""
    flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    if header.format == "JPEG" and at_least:
        flags |= jpeg_scale_flag(header.width, header.height, at_least)
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


def read_rgb(data: bytes, name: str, limits: LimitsParams, at_least: int = 0) -> ScaledImage:
    """``data`` decoded upright as ``H x W x 3`` uint8 RGB, refused by its header first if it is
    over ``limits``; ``at_least`` > 0 lets a JPEG decode smaller, down to that size a side."""
    header = checked_header(data, name, limits)
    orientation = _orientation(data)
    pixels = _opencv_rgb(data, header, at_least)
    if pixels is None:
        pixels = _pillow_rgb(data, name, at_least)  # turned upright by Pillow itself
    elif orientation != 1:
        pixels = np.ascontiguousarray(_UPRIGHT[orientation](pixels))
    sideways = orientation in _SIDEWAYS
    height, width = (header.width, header.height) if sideways else (header.height, header.width)
    return ScaledImage(pixels, height, width)


def png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (8-bit) or uint16 (16-bit) grey or RGB image."""
    pixels = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok, "OpenCV could not encode a PNG"
    return encoded.tobytes()


def mask_image(probability: np.ndarray) -> np.ndarray:
    """The binary mask, 0 or 255: foreground where the evaluate stage's metrics count it."""
    return np.where(probability > MASK_THRESHOLD, np.uint8(255), np.uint8(0))


def probability_image(probability: np.ndarray) -> np.ndarray:
    return (np.clip(probability, 0, 1) * 255).round().astype(np.uint8)


def depth_image(depth: np.ndarray) -> np.ndarray:
    """Depth in [0, 1] as 16-bit grey: 0 near, 65535 far."""
    return (np.clip(depth, 0, 1) * 65535).round().astype(np.uint16)


def sheet(bg_fg: np.ndarray, probability: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
    """bg_fg | mask | coloured depth (if there is one), side by side, at the input's size."""
    mask = np.repeat(mask_image(probability)[..., None], 3, axis=2)
    depth_part = [] if depth is None else [depth_colours(depth)]
    return np.concatenate([bg_fg, mask, *depth_part], axis=1)
