"""The whole pipeline through real DVC and real MLflow, in a temporary copy of the repository."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from PIL import Image
from repro_project import SECRET, clone_project, project_env, run

pytestmark = pytest.mark.slow


def test_repro_writes_sane_metrics_and_is_then_up_to_date(pipeline) -> None:
    project, env = pipeline
    train = json.loads((project / "results/train/metrics.json").read_text())
    evaluation = json.loads((project / "results/evaluate/metrics.json").read_text())
    index = json.loads((project / "results/index/summary.json").read_text())
    assert index["scenes"] == 6 * 3 * 4
    # Epoch 1 trains at 32 px, epoch 2 at the final 64 px: only epoch 2 can be kept.
    assert train["model_parameters"] > 0 and train["best_epoch"] == 2
    assert evaluation["scenes"] == index["test_scenes"] > 0
    for name in ("mask_iou", "mask_dice", "mask_soft_iou", "depth_delta1"):
        assert 0.0 <= evaluation[name] <= 1.0
    for name in ("depth_rmse", "depth_mae", "depth_abs_rel"):
        assert np.isfinite(evaluation[name]) and evaluation[name] >= 0.0
    per_image = pd.read_csv(project / "results/evaluate/per_image.csv")
    assert len(per_image) == evaluation["scenes"]
    assert per_image["depth_rmse"].between(0, 1).all()
    history = pd.read_csv(project / "results/train/history.csv")
    assert history["epoch"].tolist() == [1, 2]
    assert history["image_size"].tolist() == [32, 64]
    assert len(list((project / "results/evaluate/predictions").glob("*.png"))) == 3
    status = run(["dvc", "status", "--json"], project, env)
    assert json.loads(status.stdout) == {}
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project, env).stdout)
    assert "results/evaluate/metrics.json" in json.dumps(shown)


def test_mlflow_run_records_params_epochs_artifacts_and_a_loadable_model(pipeline) -> None:
    project, env = pipeline
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    client = MlflowClient()
    card = json.loads((project / "models/model.json").read_text())
    assert card["mirror_average"] is True  # params.yaml's default, for evaluate and serving
    run = client.get_run(card["run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "depthseg"
    assert run.data.params["train.epochs"] == "2"
    assert run.data.params["loss.mask.dice"] == "2.0"
    assert len(run.data.tags["index_hash"]) == 12
    assert run.data.tags["git_commit"] != "unknown"
    val_loss = client.get_metric_history(run.info.run_id, "val_loss")
    assert [point.step for point in val_loss] == [1, 2]
    assert "test_mask_iou" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"params.yaml", "model.pt", "model.json", "evaluate"} <= artifacts
    evaluate_files = {a.path for a in client.list_artifacts(run.info.run_id, "evaluate")}
    assert "evaluate/predictions" in evaluate_files


def test_a_password_in_params_yaml_reaches_no_mlflow_param_or_tag(pipeline) -> None:
    project, env = pipeline
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    card = json.loads((project / "models/model.json").read_text())
    run = client.get_run(card["run_id"])
    assert run.data.params["tune.storage"] == "postgresql://optuna:***@127.0.0.1:1/optuna"
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    recorded = [
        [*record.data.params.values(), *record.data.tags.values()]
        for record in client.search_runs(experiments)
    ]
    recorded += [list(v.tags.values()) for v in client.search_model_versions("name='depthseg'")]
    assert recorded and not any(SECRET in value for values in recorded for value in values)


def test_register_makes_the_evaluated_model_the_first_champion(pipeline) -> None:
    project, env = pipeline
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    decision = json.loads((project / "results/register/decision.json").read_text())
    assert decision == {
        "model_name": "depthseg", "version": 1, "score": decision["score"], "champion": 1,
        "promoted": True, "reason": "there was no champion",
    }  # fmt: skip
    evaluation = json.loads((project / "results/evaluate/metrics.json").read_text())
    assert decision["score"] == round(evaluation["mask_iou"] - evaluation["depth_rmse"], 6)
    version = MlflowClient().get_model_version_by_alias("depthseg", "champion")
    assert version.run_id == evaluation["mlflow_run_id"]
    assert version.tags["evaluated_scenes_hash"] == evaluation["evaluated_scenes_hash"]
    with zipfile.ZipFile(project / "data/raw/modest.zip") as archive:
        bg, scene = archive.read("bg/bg001.jpeg"), archive.read("bg_fg/bg001_fg001_01.jpeg")
    model = mlflow.pyfunc.load_model("models:/depthseg@champion")
    answer = model.predict(pd.DataFrame({"bg": [bg], "bg_fg": [scene]}))
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["mask"][0]))))
    assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255}


def test_bad_params_stop_the_stage_with_the_key_named(pipeline, tmp_path: Path) -> None:
    project, env = pipeline
    result = subprocess.run(
        [sys.executable, "src/train.py", "-S", "train.epochs=0"],
        cwd=project, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "train.epochs" in result.stderr and "greater than 0" in result.stderr


def test_evaluation_runs_on_real_modest_scenes(pipeline, modest_mini: Path, tmp_path) -> None:
    project, env = pipeline
    copy = clone_project(project, tmp_path / "project")
    python = sys.executable
    run([python, "src/fetch.py", "-S", f"data.source=local data.path={modest_mini}"], copy, env)
    run([python, "src/index.py"], copy, env)
    run([python, "src/evaluate.py", "-S", "evaluate.split=train"], copy, env)
    summary = json.loads((copy / "results/index/summary.json").read_text())
    metrics = json.loads((copy / "results/evaluate/metrics.json").read_text())
    assert summary["scenes"] == 12
    assert metrics["scenes"] == summary["train_scenes"]
    assert 0.0 <= metrics["mask_iou"] <= 1.0 and np.isfinite(metrics["depth_rmse"])
    shown = sorted(path.stem for path in (copy / "results/evaluate/predictions").glob("*.png"))
    assert len(shown) == 3 and all(name.startswith("bg0") for name in shown)


def test_lr_find_writes_its_curve_records_a_run_and_applies_the_suggestion(
    pipeline, tmp_path: Path
) -> None:
    project, env = pipeline
    copy = clone_project(project, tmp_path / "project")
    settings = "lr_find.iterations=30 lr_find.image_size=32 lr_find.end_lr=1.0"
    printed = run([sys.executable, "src/lr_find.py", "-S", settings, "--apply"], copy, env).stdout
    summary = json.loads((copy / "results/lr_find/summary.json").read_text())
    curve = pd.read_csv(copy / "results/lr_find/curve.csv")
    assert len(curve) == summary["iterations_run"] <= 30
    assert (copy / "results/lr_find/curve.png").stat().st_size > 0
    suggested = float(f"{summary['suggested_lr']:.2g}")
    assert f"suggested lr {suggested:.2g}" in printed
    params = yaml.safe_load((copy / "params.yaml").read_text())
    assert params["train"]["optimizer"]["lr"] == suggested
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs(
        [client.get_experiment_by_name("depthseg").experiment_id],
        filter_string="tags.depthseg_job = 'lr_find'",
    )
    assert len(runs) == 1
    history = client.get_metric_history(runs[0].info.run_id, "smoothed_loss")
    assert [point.step for point in history] == list(range(1, len(curve) + 1))


def test_mlproject_entry_points_run_with_overrides(pipeline, tmp_path: Path) -> None:
    project = clone_project(pipeline[0], tmp_path / "project")  # it trains: not the shared one
    env = project_env(project)
    command = ["mlflow", "run", ".", "--env-manager", "local", "-P"]
    run([*command, "set=train.epochs=1 train.image_sizes=[32]", "-e", "train"], project, env)
    run([*command, "set=evaluate.prediction_images=1", "-e", "evaluate"], project, env)
    assert len(list((project / "results/evaluate/predictions").glob("*.png"))) == 1
    card = json.loads((project / "models/model.json").read_text())
    run_record = MlflowClient(env["MLFLOW_TRACKING_URI"]).get_run(card["run_id"])
    assert run_record.data.params["train.epochs"] == "1"  # the override reached the training
    assert "test_mask_iou" in run_record.data.metrics  # evaluate added to the same run
    assert run_record.data.tags["mlflow.project.entryPoint"] == "train"
