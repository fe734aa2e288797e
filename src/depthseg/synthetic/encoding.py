"""Image files: JPEG for scenes, masks and depth maps, PNG for the foreground cut-outs."""

from __future__ import annotations

import cv2
import numpy as np

JPEG_QUALITY = 90


def jpeg(image: np.ndarray) -> bytes:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return cv2.imencode(".jpeg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()


def png(image: np.ndarray) -> bytes:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    return cv2.imencode(".png", image)[1].tobytes()
