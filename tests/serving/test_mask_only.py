"""A model without a depth output (MaskNet) through prediction, the MLflow image model, ONNX
and the registry: mask outputs only, no empty depth in their place."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import LIMITS
from mlflow.tracking import MlflowClient
from PIL import Image

from depthseg.core.params import parse_params
from depthseg.serving.images import read_rgb
from depthseg.serving.inputs import pairs_from_data
from depthseg.serving.onnx_export import export_onnx, onnx_predict
from depthseg.serving.predict_files import predict_to_folder
from depthseg.serving.predictor import Predictor, load_network
from depthseg.serving.pyfunc import input_example
from depthseg.tracking import registry
from depthseg.tracking import service as tracking

MASK_ONLY = {
    "model": {"name": "masknet"},
    "loss": {"depth": {"rmse": 0.0}},
    "registry": {"score": "mask_iou"},
    "tracking": {"experiment": "mask-only"},
}


def scene_pair(modest_mini: Path) -> tuple[bytes, bytes]:
    return (
        (modest_mini / "bg/bg001.jpeg").read_bytes(),
        (modest_mini / "bg_fg/bg001_fg001_01.jpeg").read_bytes(),
    )


def test_the_predictor_gives_a_mask_and_no_depth(saved_mask_model, modest_mini: Path) -> None:
    network = load_network(*saved_mask_model)
    assert network.outputs == ("mask_probability",)
    bg, scene = (read_rgb(data, "image", LIMITS, 64) for data in scene_pair(modest_mini))
    (prediction,) = Predictor(network, "cpu").predict([(bg, scene)])
    assert prediction.depth is None
    assert prediction.probability.shape == (scene.height, scene.width)
    assert 0 <= prediction.probability.min() <= prediction.probability.max() <= 1


def test_predict_writes_the_mask_images_alone(saved_mask_model, modest_mini, tmp_path) -> None:
    predictor = Predictor(load_network(*saved_mask_model), "cpu")
    pairs = pairs_from_data(modest_mini, LIMITS)[:2]
    predict_to_folder(predictor, pairs, tmp_path, 2, LIMITS)
    for pair in pairs:
        written = sorted(path.name for path in tmp_path.glob(f"{pair.name}_*"))
        expected = ["mask.png", "mask_probability.png", "sheet.png"]
        assert written == [f"{pair.name}_{name}" for name in expected]
    sheet = Image.open(tmp_path / f"{pairs[0].name}_sheet.png")
    scene = Image.open(io.BytesIO(pairs[0].bg_fg.read(LIMITS)))
    assert sheet.size == (2 * scene.width, scene.height)  # scene | mask, no depth


def test_the_onnx_file_has_one_output_as_pytorch(saved_mask_model, tmp_path: Path) -> None:
    network = load_network(*saved_mask_model)
    path = tmp_path / "mask.onnx"
    export_onnx(network, path)
    rng = np.random.default_rng(0)
    bg, bg_fg = (rng.integers(0, 256, (2, 70, 90, 3), dtype=np.uint8) for _ in range(2))
    (probability,) = onnx_predict(path, bg, bg_fg, LIMITS)
    with torch.inference_mode():
        (expected,) = network(torch.from_numpy(bg), torch.from_numpy(bg_fg))
    assert probability.shape == (2, 70, 90)
    np.testing.assert_allclose(probability, expected.numpy(), atol=1e-3)


def test_the_mlflow_model_answers_without_a_depth_column_and_never_replaces_a_depth_champion(
    saved_model, saved_mask_model, modest_mini: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    bg, scene = scene_pair(modest_mini)
    example = input_example(bg, scene)
    metrics = {"mask_iou": 0.5, "depth_rmse": 0.1, "evaluated_scenes_hash": "same-data"}
    depth_params = parse_params({"tracking": {"experiment": "mask-only"}})
    with tracking.start_run(depth_params) as run:
        pass
    files = registry.ModelFiles(*saved_model, example)
    first = registry.register(depth_params, run.id, metrics, files)
    mask_params = parse_params(MASK_ONLY)
    with tracking.start_run(mask_params) as run:
        pass
    mask_metrics = {"mask_iou": 0.99, "mask_dice": 0.99, "evaluated_scenes_hash": "same-data"}
    files = registry.ModelFiles(*saved_mask_model, example)
    second = registry.register(mask_params, run.id, mask_metrics, files)
    assert first.promoted and not second.promoted and second.champion == first.version
    assert "predicts mask,depth, this version mask" in second.reason
    tags = MlflowClient().get_model_version("depthseg", str(second.version)).tags
    assert tags["outputs"] == "mask" and "test_depth_rmse" not in tags

    model = mlflow.pyfunc.load_model(f"models:/depthseg/{second.version}")
    assert model.metadata.signature.outputs.input_names() == ["mask", "mask_probability"]
    answer = model.predict(pd.DataFrame({"bg": [bg], "bg_fg": [scene]}))
    assert list(answer.columns) == ["mask", "mask_probability"]
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["mask"][0]))))
    assert mask.shape == np.asarray(Image.open(io.BytesIO(scene))).shape[:2]


def test_a_mask_only_model_cannot_be_ranked_by_depth() -> None:
    with pytest.raises(ValueError, match="needs a depth RMSE"):
        registry.score({"mask_iou": 0.9}, "iou_minus_rmse")
