"""The model registry: versions tagged with their test results, `champion` moved by the rule."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image
from servers import free_port, mlflow_server

from depthseg.core.params import parse_params
from depthseg.serving.pyfunc import input_example
from depthseg.tracking import registry
from depthseg.tracking import service as tracking


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def trained_run(params) -> str:
    """A finished training run, as train leaves one."""
    with tracking.start_run(params) as run:
        run.log_metrics({"val_loss": 0.5}, step=1)
    return run.id


def model_files(saved_model) -> registry.ModelFiles:
    return registry.ModelFiles(*saved_model, input_example(jpeg(), jpeg()))


def evaluated(iou: float, rmse: float, data: str = "test-data-1") -> dict:
    names = dict.fromkeys(registry.METRIC_NAMES, 0.5)
    return {**names, "mask_iou": iou, "depth_rmse": rmse, "evaluated_scenes_hash": data}


def register_sequence(params, saved_model) -> list[registry.Decision]:
    results = [(0.80, 0.10), (0.85, 0.08), (0.84, 0.08), (0.99, 0.01, "other-test-data")]
    return [
        registry.register(params, trained_run(params), evaluated(*result), model_files(saved_model))
        for result in results
    ]


def check_registry(decisions: list[registry.Decision], params) -> None:
    assert [d.version for d in decisions] == [1, 2, 3, 4]
    assert [d.promoted for d in decisions] == [True, True, False, False]
    assert [d.champion for d in decisions] == [1, 2, 2, 2]
    assert decisions[0].reason == "there was no champion"
    assert "beats the champion (version 1): iou_minus_rmse 0.7700 vs 0.7000" in decisions[1].reason
    assert "does not beat the champion (version 2)" in decisions[2].reason
    assert "tested on other data" in decisions[3].reason
    client = MlflowClient()
    assert int(client.get_model_version_by_alias("depthseg", "champion").version) == 2
    assert int(client.get_model_version_by_alias("depthseg", "candidate").version) == 4
    tags = client.get_model_version("depthseg", "2").tags
    assert tags["test_mask_iou"] == "0.85" and tags["evaluated_scenes_hash"] == "test-data-1"
    assert tags["score"] == "0.770000" and tags["git_commit"]
    assert json.loads(tags["params"])["train.optimizer.lr"] == params.train.optimizer.lr


def test_champion_moves_only_for_a_better_model_on_the_same_test_data(
    saved_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = parse_params({"tracking": {"experiment": "registry"}})
    check_registry(register_sequence(params, saved_model), params)


@pytest.mark.slow
def test_the_registry_works_on_a_tracking_server(
    saved_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    server = mlflow_server(tmp_path, port, dict(os.environ))
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
        params = parse_params({"tracking": {"experiment": "registry"}})
        check_registry(register_sequence(params, saved_model), params)
        model = mlflow.pyfunc.load_model("models:/depthseg@champion")
        assert model.metadata.signature.inputs.input_names() == ["bg", "bg_fg"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_min_improvement_keeps_the_champion_for_a_small_gain(
    saved_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = parse_params({"registry": {"score": "mask_iou", "min_improvement": 0.01}})
    model = model_files(saved_model)
    first = registry.register(params, trained_run(params), evaluated(0.80, 0.1), model)
    small = registry.register(params, trained_run(params), evaluated(0.805, 0.0), model)
    large = registry.register(params, trained_run(params), evaluated(0.82, 0.2), model)
    assert (first.promoted, small.promoted, large.promoted) == (True, False, True)
    assert "by more than 0.01: mask_iou 0.8050 vs 0.8000" in small.reason


def test_the_champions_own_run_registered_again_takes_over_with_its_new_limits(
    saved_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change of the serving limits reruns register alone: the same weights, scored the same,
    become the champion again, with the new limits in their model_config."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = parse_params({})
    run_id, model = trained_run(params), model_files(saved_model)
    first = registry.register(params, run_id, evaluated(0.80, 0.1), model)
    stricter = parse_params({"limits": {"request_rows": 2}})
    again = registry.register(stricter, run_id, evaluated(0.80, 0.1), model)
    worse = registry.register(stricter, run_id, evaluated(0.70, 0.1), model)
    assert (first.promoted, again.promoted, worse.promoted) == (True, True, False)
    assert "training run, logged again" in again.reason
    served = mlflow.pyfunc.load_model("models:/depthseg@champion")
    assert served.model_config["request_rows"] == 2
    assert int(MlflowClient().get_model_version_by_alias("depthseg", "champion").version) == 2
