"""Images in any form a user has (files, bytes, base64) to RGB arrays, and predictions to PNGs."""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from depthseg.core.errors import DepthsegError
from depthseg.data.decoding import DECODE_ERRORS
from depthseg.engine.preview import depth_colours
from depthseg.objectives.metrics import MASK_THRESHOLD


class ImageInputError(DepthsegError, ValueError):
    """An input image cannot be read; the message names it."""


def decoded_bytes(value: bytes | str, name: str) -> bytes:
    """The encoded image in ``value``: raw bytes as they are, a str as base64."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ImageInputError(
            f"{name}: a text value must be a base64-encoded PNG or JPEG file"
        ) from None


def read_rgb(source: Path | bytes | str, name: str | None = None) -> np.ndarray:
    """``H x W x 3`` uint8 RGB from a file, encoded bytes or base64 text; any size and mode.

    Camera photos are turned upright by their EXIF orientation, as viewers show them.
    """
    label = name or (str(source) if isinstance(source, Path) else "image")
    data = source.read_bytes() if isinstance(source, Path) else decoded_bytes(source, label)
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except DECODE_ERRORS as error:
        raise ImageInputError(f"{label}: not an image Pillow can read ({error})") from None


def png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (8-bit) or uint16 (16-bit) grey or RGB image."""
    pixels = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok, "OpenCV could not encode a PNG"
    return encoded.tobytes()


def mask_image(probability: np.ndarray) -> np.ndarray:
    """The binary mask, 0 or 255: foreground where the evaluate stage's metrics count it."""
    return np.where(probability > MASK_THRESHOLD, 255, 0).astype(np.uint8)


def probability_image(probability: np.ndarray) -> np.ndarray:
    return (np.clip(probability, 0, 1) * 255).round().astype(np.uint8)


def depth_image(depth: np.ndarray) -> np.ndarray:
    """Depth in [0, 1] as 16-bit grey: 0 near, 65535 far."""
    return (np.clip(depth, 0, 1) * 65535).round().astype(np.uint16)


def sheet(bg_fg: np.ndarray, probability: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """bg_fg | mask | coloured depth, side by side, at the input's size."""
    mask = np.repeat(mask_image(probability)[..., None], 3, axis=2)
    return np.concatenate([bg_fg, mask, depth_colours(depth)], axis=1)
