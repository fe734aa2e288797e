"""The MLflow model that takes images: a table of encoded ``bg`` and ``bg_fg`` images in, the
mask and depth as PNG images of the scene's size out.

It is logged as code (``model_code.py``), its weights as a state dict: loading it unpickles
nothing. Columns in: ``bg``, ``bg_fg`` (PNG or JPEG bytes; base64 text in JSON). Columns out,
base64 PNGs: ``mask`` (8-bit, 0 or 255), ``mask_probability`` (8-bit), ``depth`` (16-bit, 0 near).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.pyfunc.model import PythonModelContext
from mlflow.types import ColSpec, DataType, Schema

from depthseg.serving.images import (
    ImageInputError,
    depth_image,
    mask_image,
    png,
    probability_image,
    read_rgb,
)
from depthseg.serving.predictor import Prediction, Predictor, load_network

INPUT_COLUMNS = ("bg", "bg_fg")
OUTPUT_COLUMNS = ("mask", "mask_probability", "depth")
#: The files the logged model carries: the weights and the card that says how to build them.
WEIGHTS_ARTIFACT, CARD_ARTIFACT = "weights", "card"
#: The file MLflow runs to build the model when it loads it ("models from code").
MODEL_CODE = Path(__file__).with_name("model_code.py")

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(DataType.binary, name) for name in INPUT_COLUMNS]),
    outputs=Schema([ColSpec(DataType.string, name) for name in OUTPUT_COLUMNS]),
)


def encoded_outputs(prediction: Prediction) -> dict[str, str]:
    images = {
        "mask": mask_image(prediction.probability),
        "mask_probability": probability_image(prediction.probability),
        "depth": depth_image(prediction.depth),
    }
    return {name: base64.b64encode(png(image)).decode("ascii") for name, image in images.items()}


def input_example(bg: bytes, bg_fg: bytes) -> pd.DataFrame:
    """The model's input for one scene, as MLflow records it beside the signature."""
    return pd.DataFrame({"bg": [bg], "bg_fg": [bg_fg]})


class ImagePairModel(PythonModel):
    """DSResNet behind MLflow's pyfunc interface, taking and giving images."""

    predictor: Predictor

    def load_context(self, context: PythonModelContext) -> None:
        artifacts = context.artifacts
        network = load_network(Path(artifacts[WEIGHTS_ARTIFACT]), Path(artifacts[CARD_ARTIFACT]))
        self.predictor = Predictor(network)

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        missing = [name for name in INPUT_COLUMNS if name not in model_input.columns]
        if missing:
            raise ImageInputError(f"the input needs columns bg and bg_fg; {missing} missing")
        pairs = (
            (read_rgb(row.bg, f"row {i} bg"), read_rgb(row.bg_fg, f"row {i} bg_fg"))
            for i, row in enumerate(model_input.itertuples(index=False))
        )
        rows = [encoded_outputs(prediction) for prediction in self.predictor.predict(pairs)]
        return pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))


def open_predictor(model: str, device: str = "auto") -> Predictor:
    """A weights file (its card beside it, ``.json``) or an MLflow model URI, ready to predict."""
    if ":/" in model:
        return load_predictor(model, device)
    weights = Path(model)
    return Predictor(load_network(weights, weights.with_suffix(".json")), device)


def load_predictor(uri: str, device: str = "auto") -> Predictor:
    """The predictor inside an MLflow image model (``models:/NAME@ALIAS``, ``runs:/ID/model``)."""
    try:
        model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    except MlflowException as error:
        raise ImageInputError(
            f"cannot load the MLflow model {uri} from {mlflow.get_tracking_uri()} "
            f"({error.message}); check the URI and MLFLOW_TRACKING_URI"
        ) from None
    if not isinstance(model, ImagePairModel):
        raise ImageInputError(f"{uri} is not a depthseg image model ({type(model).__name__})")
    return Predictor(model.predictor.network, device)
