"""The MLflow model that takes images: a table of encoded ``bg`` and ``bg_fg`` images in, the
mask and depth as PNG images of the scene's size out (the mask alone from a mask-only model).

It is logged as code (``model_code.py``), its weights as a state dict: loading it unpickles
nothing. Columns in: ``bg``, ``bg_fg`` (PNG or JPEG bytes; base64 text in JSON). Columns out,
base64 PNGs: ``mask`` (8-bit, 0 or 255), ``mask_probability`` (8-bit), ``depth`` (16-bit, 0 near;
not from a model without a depth output).

A request is checked against the limits of its ``model_config`` (``params.yaml``'s ``limits``
when the model was logged; ``MLFLOW_PYFUNC_INFERENCE_CONFIG`` overrides them when serving)
before any image is decoded: rows, encoded bytes, each image's pixels, all pixels together.
Bad input is answered HTTP 400 with one line; anything else HTTP 500 without a traceback (the
server's log has it).
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel
from mlflow.pyfunc.model import PythonModelContext
from mlflow.types import ColSpec, DataType, Schema

from depthseg.core.errors import DepthsegError
from depthseg.core.params import LimitsParams
from depthseg.core.secrets import redact
from depthseg.data.image_header import checked_header
from depthseg.serving.images import (
    ImageInputError,
    depth_image,
    encoded_bytes,
    mask_image,
    png,
    probability_image,
    read_rgb,
)
from depthseg.serving.predictor import Prediction, Predictor, load_network

INPUT_COLUMNS = ("bg", "bg_fg")
MASK_COLUMNS = ("mask", "mask_probability")
DEPTH_COLUMN = "depth"
#: The files the logged model carries: the weights and the card that says how to build them.
WEIGHTS_ARTIFACT, CARD_ARTIFACT = "weights", "card"
#: The file MLflow runs to build the model when it loads it ("models from code").
MODEL_CODE = Path(__file__).with_name("model_code.py")


def output_columns(depth: bool) -> tuple[str, ...]:
    """The answer's columns, for a model with a depth output or without."""
    return (*MASK_COLUMNS, DEPTH_COLUMN) if depth else MASK_COLUMNS


def signature(depth: bool) -> ModelSignature:
    return ModelSignature(
        inputs=Schema([ColSpec(DataType.binary, name) for name in INPUT_COLUMNS]),
        outputs=Schema([ColSpec(DataType.string, name) for name in output_columns(depth)]),
    )


_log = logging.getLogger(__name__)
#: The limits a request is checked against: the logged model's ``model_config``.
SERVING_LIMITS = ("image_pixels", "image_bytes", "jpeg_scans", "request_rows", "request_pixels")


def model_config(limits: LimitsParams) -> dict[str, int]:
    """The serving limits as the logged model records them."""
    return {key: getattr(limits, key) for key in SERVING_LIMITS}


class OneLineAnswer(MlflowException):
    """An error the scoring server answers with this message alone. The server prefixes the
    message of any exception with the whole request table ("Failed to predict data '...'"):
    many lines that echo the client's bytes back to it."""

    def __init__(self, message: str, error_code: int) -> None:
        self._answer = message
        super().__init__(message, error_code=error_code)

    @property
    def message(self) -> str:
        return self._answer

    @message.setter
    def message(self, _: str) -> None:
        """The server's prefix is dropped."""


def encoded_outputs(prediction: Prediction) -> dict[str, str]:
    images = {
        "mask": mask_image(prediction.probability),
        "mask_probability": probability_image(prediction.probability),
    }
    if prediction.depth is not None:
        images[DEPTH_COLUMN] = depth_image(prediction.depth)
    return {name: base64.b64encode(png(image)).decode("ascii") for name, image in images.items()}


def input_example(bg: bytes, bg_fg: bytes) -> pd.DataFrame:
    """The model's input for one scene, as MLflow records it beside the signature."""
    return pd.DataFrame({"bg": [bg], "bg_fg": [bg_fg]})


def request_images(table: pd.DataFrame, limits: LimitsParams) -> list[tuple[bytes, bytes]]:
    """The encoded (bg, bg_fg) of each row, every one checked by its header against ``limits``
    (rows, bytes, pixels of each image and of all together) before any is decoded."""
    missing = [name for name in INPUT_COLUMNS if name not in table.columns]
    if missing:
        raise ImageInputError(f"the input needs columns bg and bg_fg; {missing} missing")
    if refusal := limits.exceeded("request_rows", len(table), "the request", "rows"):
        raise ImageInputError(refusal)
    rows = [
        tuple(
            encoded_bytes(value, f"row {i} {column}", limits)
            for column, value in zip(INPUT_COLUMNS, values, strict=True)
        )
        for i, values in enumerate(table[list(INPUT_COLUMNS)].itertuples(index=False))
    ]
    pixels = sum(
        checked_header(data, f"row {i} {column}", limits).pixels
        for i, row in enumerate(rows)
        for column, data in zip(INPUT_COLUMNS, row, strict=True)
    )
    if refusal := limits.exceeded("request_pixels", pixels, "the request's images", "pixels"):
        raise ImageInputError(refusal)
    return rows


class ImagePairModel(PythonModel):
    """A trained network behind MLflow's pyfunc interface, taking and giving images."""

    predictor: Predictor
    limits: LimitsParams

    def load_context(self, context: PythonModelContext) -> None:
        artifacts = context.artifacts
        network = load_network(Path(artifacts[WEIGHTS_ARTIFACT]), Path(artifacts[CARD_ARTIFACT]))
        self.predictor = Predictor(network)
        self.limits = LimitsParams.model_validate(context.model_config or {})

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        try:
            return self.predict_images(model_input)
        except DepthsegError as error:  # the request's fault: HTTP 400, one line
            raise OneLineAnswer(redact(str(error)), INVALID_PARAMETER_VALUE) from None
        except Exception:  # ours: HTTP 500; the traceback goes to the log, not to the client
            _log.exception("depthseg: prediction failed")
            raise OneLineAnswer(
                "the model failed on this request; the server's log has the details",
                INTERNAL_ERROR,
            ) from None

    def predict_images(self, model_input: pd.DataFrame) -> pd.DataFrame:
        """The predictions of ``model_input``; DepthsegError names what is wrong with it."""
        size = self.predictor.image_size
        pairs = (
            tuple(
                read_rgb(data, f"row {i} {column}", self.limits, size)
                for column, data in zip(INPUT_COLUMNS, row, strict=True)
            )
            for i, row in enumerate(request_images(model_input, self.limits))
        )
        rows = [encoded_outputs(prediction) for prediction in self.predictor.predict(pairs)]
        return pd.DataFrame(rows, columns=list(output_columns(self.predictor.predicts_depth)))
