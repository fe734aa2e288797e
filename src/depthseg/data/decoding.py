"""Scene images decoded to uint8 arrays at the size training asks for, fast.

JPEGs (every scene image of the release and of the built-in data) go through OpenCV, which
decodes at a reduced scale in one C call and gives the same pixels as Pillow (both run
libjpeg-turbo). Anything OpenCV does not take, or refuses, goes through Pillow, which reads the
other formats and, for a broken file, says what is wrong with it.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from depthseg.core.errors import DepthsegError


class ImageError(DepthsegError, ValueError):
    """An image of the dataset cannot be used; the one-line message names the scene and member.

    A DataLoader worker's error reaches the main process as ``ImageError(worker traceback)``;
    only its last line, the message itself, is kept.
    """

    def __init__(self, message: str) -> None:
        last_line = message.strip().splitlines()[-1] if message.strip() else message
        super().__init__(last_line.split("ImageError: ", 1)[-1])


#: What Pillow raises for a truncated file, a broken data stream or a bad PNG chunk.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

#: OpenCV's flags for scaling by 1/2, 1/4, 1/8 while decoding (libjpeg does it in the IDCT).
_REDUCED = {1: 0, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
            8: cv2.IMREAD_REDUCED_GRAYSCALE_8}  # fmt: skip
#: Orientation ignored, as Pillow does without ``exif_transpose``.
_COLOUR = {"RGB": cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION,
           "L": cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION}  # fmt: skip

#: Start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic).
_START_OF_FRAME = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_frame(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, components) from a JPEG's frame header; None if ``data`` has none."""
    if data[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker in _START_OF_FRAME:
            frame = data[position + 4 : position + 10]
            if len(frame) < 6:
                return None
            return (
                int.from_bytes(frame[3:5], "big"),
                int.from_bytes(frame[1:3], "big"),
                frame[5],
            )
        position += 2 + length
    return None


def _reduction(width: int, height: int, size: int) -> int:
    """The largest of 8, 4, 2, 1 that keeps both sides at least ``size``: Pillow's ``draft``."""
    ratio = min(width // size, height // size)
    return next((scale for scale in (8, 4, 2) if ratio >= scale), 1)


def _opencv_jpeg(data: bytes, size: int, mode: str) -> np.ndarray | None:
    frame = jpeg_frame(data)
    # Grey or YCbCr only (CMYK converts differently); Pillow guards against decompression bombs.
    if frame is None or frame[2] not in (1, 3) or frame[0] * frame[1] > Image.MAX_IMAGE_PIXELS:
        return None
    flags = _COLOUR[mode] | _REDUCED[_reduction(frame[0], frame[1], size)]
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


def _pillow(data: bytes, size: int, mode: str, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft(mode, (size, size))
            return np.asarray(image.convert(mode))
    except DECODE_ERRORS as error:
        raise ImageError(
            f"{name}: cannot decode this image ({error}); the file is corrupt"
        ) from None


def decode_image(data: bytes, size: int, mode: str, name: str) -> np.ndarray:
    """Decode a JPEG/PNG to ``size`` x ``size`` in ``mode`` ('RGB' or 'L') as uint8."""
    pixels = _opencv_jpeg(data, size, mode)
    if pixels is None:
        pixels = _pillow(data, size, mode, name)
    if pixels.shape[:2] != (size, size):
        pixels = cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA)
    return pixels
