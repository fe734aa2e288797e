"""Scene images decoded to uint8 arrays at the size training asks for, fast.

The index checked every image's header against ``limits`` before training reads it (see
``image_header``); here they are decoded. JPEGs (every scene image of the release and of the
built-in data) go through OpenCV, which decodes at a reduced scale in one C call and gives the
same pixels as Pillow (both run libjpeg-turbo). Anything OpenCV does not take, or refuses, goes
through Pillow, which reads the other formats and, for a broken file, says what is wrong with it.
Then ``resized`` brings the image to the size asked for.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from depthseg.data.image_header import ACCEPTED_FORMATS, DECODE_ERRORS, ImageError, jpeg_frame

#: OpenCV's flags for scaling by 1/2, 1/4, 1/8 while decoding (libjpeg does it in the IDCT).
_REDUCED = {1: 0, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
            8: cv2.IMREAD_REDUCED_GRAYSCALE_8}  # fmt: skip
#: Orientation ignored, as Pillow does without ``exif_transpose``.
_COLOUR = {"RGB": cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION,
           "L": cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION}  # fmt: skip


def _reduction(width: int, height: int, size: int) -> int:
    """The largest of 8, 4, 2, 1 that keeps both sides at least ``size``: Pillow's ``draft``."""
    ratio = min(width // size, height // size)
    return next((scale for scale in (8, 4, 2) if ratio >= scale), 1)


def _opencv_jpeg(data: bytes, size: int, mode: str) -> np.ndarray | None:
    frame = jpeg_frame(data)
    # Grey or YCbCr only (CMYK converts differently); Pillow guards against decompression bombs.
    if frame is None or frame[2] not in (1, 3) or frame[0] * frame[1] > Image.MAX_IMAGE_PIXELS:
        return None
    flags = _COLOUR[mode] | jpeg_scale_flag(frame[0], frame[1], size)
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


def jpeg_scale_flag(width: int, height: int, size: int) -> int:
    """OpenCV's flag that decodes a JPEG of ``width`` x ``height`` at the smallest of 1/8, 1/4,
    1/2 and full scale that keeps both sides at least ``size``."""
    return _REDUCED[_reduction(width, height, size)]


def _pillow(data: bytes, size: int, mode: str, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            image.draft(mode, (size, size))
            return np.asarray(image.convert(mode))
    except DECODE_ERRORS as error:
        raise ImageError(
            f"{name}: cannot decode this image ({error}); the file is corrupt"
        ) from None


def resized(pixels: np.ndarray, size: int) -> np.ndarray:
    """``pixels`` at ``size`` x ``size``: bilinear where no side shrinks by 2 or more, area
    averaging where one does.

    A JPEG's reduced decoding has already averaged 2x2, 4x4 or 8x8 blocks, so what is left is
    under 2x, where bilinear reads every pixel and costs a fifth of OpenCV's area resize (13 and
    57 us from 112 to 96 px, 34 and 188 from 224 to 160): the loader's largest cost after
    decoding. Larger shrinks (a PNG, a huge photo) are averaged, which bilinear would alias.
    """
    if pixels.shape[:2] == (size, size):
        return pixels
    shrinks_twice = max(pixels.shape[:2]) >= 2 * size
    interpolation = cv2.INTER_AREA if shrinks_twice else cv2.INTER_LINEAR
    return cv2.resize(pixels, (size, size), interpolation=interpolation)


def opencv_threads_for_loader(workers: int) -> None:
    """With loader ``workers``, OpenCV computes on the calling thread alone, in this process and
    in the workers it forks from now on: they have the cores between them. Scene images are
    small, so OpenCV's threads cost a worker more than they give (on AMD, one thread took 2-13%
    less CPU time a scene), and each of N workers starting a thread per core would crowd the
    cores. Called before the workers fork: a child that resizes the thread pool it inherited can
    deadlock. Without workers the loader decodes in this process, whose other cores are idle
    meanwhile, so OpenCV keeps its threads."""
    if workers:
        cv2.setNumThreads(1)


def decode_image(data: bytes, size: int, mode: str, name: str) -> np.ndarray:
    """Decode a JPEG/PNG to ``size`` x ``size`` in ``mode`` ('RGB' or 'L') as uint8."""
    pixels = _opencv_jpeg(data, size, mode)
    if pixels is None:
        pixels = _pillow(data, size, mode, name)
    return resized(pixels, size)
