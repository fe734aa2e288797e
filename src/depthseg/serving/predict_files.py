"""Predict scene pairs read from files and write, per scene, the mask and depth images."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from depthseg.core.files import replaced_atomically
from depthseg.engine.preview import depth_colours
from depthseg.serving.images import (
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
    "depth": "depth, 16-bit PNG (0 near, 65535 far)",
    "depth_colour": "depth in the magma colour map (dark = near)",
    "sheet": "scene | mask | coloured depth",
}


@lru_cache(maxsize=16)  # scenes share their background: decode each one once
def _background(ref: ImageRef) -> np.ndarray:
    return read_rgb(ref.read(), str(ref))


def _decoded(pairs: list[ScenePair]) -> Iterator[tuple[ScenePair, np.ndarray, np.ndarray]]:
    for pair in pairs:
        yield pair, _background(pair.bg), read_rgb(pair.bg_fg.read(), str(pair.bg_fg))


def write_prediction(out: Path, name: str, scene: np.ndarray, prediction: Prediction) -> None:
    images = {
        "mask": mask_image(prediction.probability),
        "mask_probability": probability_image(prediction.probability),
        "depth": depth_image(prediction.depth),
        "depth_colour": depth_colours(prediction.depth),
        "sheet": sheet(scene, prediction.probability, prediction.depth),
    }
    for suffix, image in images.items():
        with replaced_atomically(out / f"{name}_{suffix}.png") as partial:
            partial.write_bytes(png(image))


def predict_to_folder(
    predictor: Predictor, pairs: list[ScenePair], out: Path, batch_size: int
) -> float:
    """Write every pair's outputs to ``out``; return scenes per second."""
    out.mkdir(parents=True, exist_ok=True)
    to_model, to_write = itertools.tee(_decoded(pairs))
    predictions = predictor.predict(((bg, scene) for _, bg, scene in to_model), batch_size)
    started = time.perf_counter()
    progress = tqdm(total=len(pairs), desc="predicting", unit=" scenes", disable=None)
    with progress:
        for (pair, _, scene), prediction in zip(to_write, predictions, strict=True):
            write_prediction(out, pair.name, scene, prediction)
            progress.update()
    return len(pairs) / (time.perf_counter() - started)
