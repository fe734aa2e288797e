"""Predict scene pairs read from files and write, per scene, the mask and depth images (the mask
images alone from a model without a depth output)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from depthseg.core.files import replaced_atomically
from depthseg.core.params import LimitsParams
from depthseg.data.colours import depth_colours
from depthseg.serving.images import (
    ScaledImage,
    depth_image,
    mask_image,
    png,
    probability_image,
    read_rgb,
    sheet,
)
from depthseg.serving.inputs import ImageRef, ScenePair
from depthseg.serving.predictor import Prediction, Predictor

#: File name suffix -> what it holds.
OUTPUTS = {
    "mask": "binary mask, 8-bit PNG (0 or 255)",
    "mask_probability": "mask probability, 8-bit PNG",
    "depth": "depth, 16-bit PNG (0 near, 65535 far; not from a mask-only model)",
    "depth_colour": "depth in the magma colour map (dark = near; not from a mask-only model)",
    "sheet": "scene | mask | coloured depth",
}


def _decoded(
    pairs: list[ScenePair], limits: LimitsParams, size: int
) -> Iterator[tuple[ScenePair, ScaledImage, ScaledImage]]:
    """Each pair's images decoded only as large as the network needs, as the served model
    decodes them (a background once for the scenes that share it)."""
    background: tuple[ImageRef, ScaledImage] | None = None
    for pair in pairs:
        if background is None or background[0] != pair.bg:
            background = pair.bg, read_rgb(pair.bg.read(limits), str(pair.bg), limits, size)
        scene = read_rgb(pair.bg_fg.read(limits), str(pair.bg_fg), limits, size)
        yield pair, background[1], scene


def write_prediction(out: Path, name: str, scene: np.ndarray, prediction: Prediction) -> None:
    images = {
        "mask": mask_image(prediction.probability),
        "mask_probability": probability_image(prediction.probability),
        "sheet": sheet(scene, prediction.probability, prediction.depth),
    }
    if prediction.depth is not None:
        images |= {
            "depth": depth_image(prediction.depth),
            "depth_colour": depth_colours(prediction.depth),
        }
    for suffix, image in images.items():
        with replaced_atomically(out / f"{name}_{suffix}.png") as partial:
            partial.write_bytes(png(image))


def predict_to_folder(
    predictor: Predictor,
    pairs: list[ScenePair],
    out: Path,
    batch_size: int,
    limits: LimitsParams,
) -> float:
    """Write every pair's outputs to ``out`` (created with the first); return scenes per second.

    The sheet shows the scene whole: it is decoded again, at its own size, once predicted.
    """
    to_model, to_write = itertools.tee(_decoded(pairs, limits, predictor.image_size))
    predictions = predictor.predict(((bg, scene) for _, bg, scene in to_model), batch_size)
    started = time.perf_counter()
    progress = tqdm(total=len(pairs), desc="predicting", unit=" scenes", disable=None)
    with progress:
        for (pair, _, _), prediction in zip(to_write, predictions, strict=True):
            scene = read_rgb(pair.bg_fg.read(limits), str(pair.bg_fg), limits).pixels
            write_prediction(out, pair.name, scene, prediction)
            progress.update()
    return len(pairs) / (time.perf_counter() - started)
