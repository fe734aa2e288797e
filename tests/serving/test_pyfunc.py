"""The MLflow image model: logged as code with a state dict, images in, images out."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from PIL import Image

from depthseg.serving.images import read_rgb
from depthseg.serving.predictor import Predictor, load_network
from depthseg.serving.pyfunc import ImageInputError, input_example, load_predictor
from depthseg.tracking import service as tracking


@pytest.fixture
def logged_model(saved_model, modest_mini: Path, tmp_path: Path) -> str:
    """runs:/ URI of the image model logged to a SQLite store in ``tmp_path``."""
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("pyfunc")
    bg = (modest_mini / "bg/bg001.jpeg").read_bytes()
    scene = (modest_mini / "bg_fg/bg001_fg001_01.jpeg").read_bytes()
    with mlflow.start_run() as run:
        tracking.log_model(*saved_model, input_example(bg, scene))
    return f"runs:/{run.info.run_id}/model"


def resized_jpeg(path: Path, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).resize(size).save(buffer, "JPEG")
    return buffer.getvalue()


def test_the_logged_model_answers_with_images_of_each_scene_size(
    logged_model: str, saved_model, modest_mini: Path
) -> None:
    model = mlflow.pyfunc.load_model(logged_model)
    assert model.metadata.signature.inputs.input_names() == ["bg", "bg_fg"]
    bg = (modest_mini / "bg/bg002.jpeg").read_bytes()
    scenes = [
        (modest_mini / "bg_fg/bg002_fg002_01.jpeg").read_bytes(),
        resized_jpeg(modest_mini / "bg_fg/bg002_fg002_01.jpeg", (150, 100)),
    ]
    table = pd.DataFrame({"bg": [bg, base64.b64encode(bg).decode()], "bg_fg": scenes})
    answer = model.predict(table)
    assert list(answer.columns) == ["mask", "mask_probability", "depth"]
    reference = Predictor(load_network(*saved_model), "cpu")
    for row, scene in zip(answer.itertuples(), scenes, strict=True):
        expected = next(reference.predict([(read_rgb(bg), read_rgb(scene))]))
        mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(row.mask))))
        depth = np.asarray(Image.open(io.BytesIO(base64.b64decode(row.depth))))
        assert mask.shape == depth.shape == expected.depth.shape
        np.testing.assert_array_equal(mask == 255, expected.probability >= 0.5)
        np.testing.assert_allclose(depth / 65535, expected.depth, atol=1 / 65535)
    assert answer["mask"][1] != answer["mask"][0]


def test_the_model_is_code_plus_a_state_dict_with_a_real_input_example(logged_model: str) -> None:
    local = Path(mlflow.artifacts.download_artifacts(logged_model))
    flavour = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavour["model_code_path"].endswith("model_code.py")
    assert "python_model" not in flavour  # nothing cloudpickled
    assert not list(local.rglob("*.pkl"))
    example = mlflow.models.Model.load(str(local)).load_input_example(str(local))
    assert read_rgb(example["bg_fg"][0]).shape == (224, 224, 3)


def test_wrong_input_is_named_and_a_bad_uri_says_where_it_looked(
    logged_model: str, tmp_path: Path
) -> None:
    model = mlflow.pyfunc.load_model(logged_model).unwrap_python_model()
    with pytest.raises(ImageInputError, match="'bg_fg'"):
        model.predict(None, pd.DataFrame({"bg": [b""]}))
    with pytest.raises(ImageInputError, match="row 0 bg: a text value must be a base64"):
        model.predict(None, pd.DataFrame({"bg": ["?"], "bg_fg": ["?"]}))
    with pytest.raises(ImageInputError, match=r"models:/nothing@champion.*MLFLOW_TRACKING_URI"):
        load_predictor("models:/nothing@champion")
    assert MlflowClient().search_registered_models() == []
