"""The MLflow image model: logged as code with a state dict, images in, images out; loaded for
predict.py and export.py as weights only."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import LIMITS
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from PIL import Image

from depthseg.serving.images import ImageInputError, read_rgb
from depthseg.serving.model_source import open_predictor
from depthseg.serving.predictor import Predictor, load_network
from depthseg.serving.pyfunc import SERVING_LIMITS, input_example
from depthseg.tracking import service as tracking


@pytest.fixture
def logged_model(saved_model, modest_mini: Path, tmp_path: Path) -> tuple[str, Path]:
    """(models:/ URI of the image model logged to a SQLite store, its artifact folder)."""
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment("pyfunc", (tmp_path / "a").as_uri())
    )
    bg = (modest_mini / "bg/bg001.jpeg").read_bytes()
    scene = (modest_mini / "bg_fg/bg001_fg001_01.jpeg").read_bytes()
    with mlflow.start_run():
        uri = tracking.log_model(*saved_model, input_example(bg, scene), LIMITS)
    return uri, next((tmp_path / "a").rglob("MLmodel")).parent


def resized_jpeg(path: Path, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).resize(size).save(buffer, "JPEG")
    return buffer.getvalue()


def test_the_logged_model_answers_with_images_of_each_scene_size(
    logged_model, saved_model, modest_mini: Path
) -> None:
    model = mlflow.pyfunc.load_model(logged_model[0])
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
        pair = (read_rgb(bg, "bg", LIMITS, 64), read_rgb(scene, "bg_fg", LIMITS, 64))
        expected = next(reference.predict([pair]))
        mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(row.mask))))
        depth = np.asarray(Image.open(io.BytesIO(base64.b64decode(row.depth))))
        assert mask.shape == depth.shape == expected.depth.shape
        np.testing.assert_array_equal(mask == 255, expected.probability > 0.5)
        np.testing.assert_allclose(depth / 65535, expected.depth, atol=1 / 65535)
    assert answer["mask"][1] != answer["mask"][0]


def test_the_model_is_code_plus_a_state_dict_with_a_real_input_example(logged_model) -> None:
    local = Path(mlflow.artifacts.download_artifacts(logged_model[0]))
    flavour = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavour["model_code_path"].endswith("model_code.py")
    assert "python_model" not in flavour  # nothing cloudpickled
    assert not list(local.rglob("*.pkl"))
    assert flavour["config"] == {key: getattr(LIMITS, key) for key in SERVING_LIMITS}
    example = mlflow.models.Model.load(str(local)).load_input_example(str(local))
    assert read_rgb(example["bg_fg"][0], "example", LIMITS).pixels.shape == (224, 224, 3)


def test_bad_requests_are_refused_with_one_line_and_the_limits_can_be_set_when_loading(
    logged_model, modest_mini: Path
) -> None:
    model = mlflow.pyfunc.load_model(logged_model[0])
    bg = (modest_mini / "bg/bg001.jpeg").read_bytes()
    cases = {
        "'bg_fg'": pd.DataFrame({"bg": [b""]}),
        "row 0 bg: a text value must be a base64": pd.DataFrame({"bg": ["?"], "bg_fg": ["?"]}),
        r"row 0 bg_fg: not an image": pd.DataFrame({"bg": [bg], "bg_fg": [b"junk"]}),
    }
    for message, table in cases.items():
        with pytest.raises(MlflowException, match=message) as caught:
            model.unwrap_python_model().predict(None, table)
        assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
        assert "\n" not in caught.value.message and caught.value.get_http_status_code() == 400
    strict = mlflow.pyfunc.load_model(logged_model[0], model_config={"request_rows": 1})
    with pytest.raises(MlflowException, match=r"2 rows, over the limit of 1 rows"):
        strict.unwrap_python_model().predict(
            None, pd.DataFrame({"bg": [bg, bg], "bg_fg": [bg, bg]})
        )


def test_predict_and_export_load_the_weights_of_a_registry_uri_but_never_its_code(
    logged_model, saved_model, tmp_path: Path
) -> None:
    uri, stored = logged_model
    version = mlflow.register_model(uri, "depthseg")
    MlflowClient().set_registered_model_alias("depthseg", "champion", version.version)
    marker = tmp_path / "the artifact's code ran"
    code = stored / "model_code.py"
    code.write_text(f"open({str(marker)!r}, 'w').close()\n" + code.read_text())
    predictor = open_predictor("models:/depthseg@champion", LIMITS, "cpu")
    assert not marker.exists()
    reference = load_network(*saved_model)
    for ours, theirs in zip(
        predictor.network.state_dict().values(), reference.state_dict().values(), strict=True
    ):
        assert (ours == theirs).all()
    mlflow.pyfunc.load_model("models:/depthseg@champion")  # what would have run it
    assert marker.exists()


def test_a_bad_uri_says_where_it_looked_and_an_oversized_artifact_is_not_downloaded(
    logged_model,
) -> None:
    with pytest.raises(ImageInputError, match=r"models:/nothing@champion.*MLFLOW_TRACKING_URI"):
        open_predictor("models:/nothing@champion", LIMITS)
    assert MlflowClient().search_registered_models() == []
    small = LIMITS.model_copy(update={"model_bytes": 1000})
    with pytest.raises(
        ImageInputError,
        match=r"artifacts/model\.pt is [\d,]+ bytes, over the limit of 1,000 bytes "
        r"\(limits\.model_bytes\)",
    ):
        open_predictor(logged_model[0], small)
