"""The whole pipeline through real DVC and real MLflow, in a temporary copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["src", "dvc.yaml", "params.yaml", "MLproject", ".dvc/config", ".gitignore"]
TINY = {
    "data": {"synthetic": {"backgrounds": 6, "foregrounds": 3, "placements": 4, "image_size": 64}},
    "model": {"width": 0.125},
    "train": {"epochs": 2, "image_sizes": [32, 64], "batch_size": 8, "workers": 0},
    "evaluate": {"prediction_images": 3},
}

pytestmark = pytest.mark.slow


def _merge(base: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if isinstance(value, dict):
            _merge(base.setdefault(key, {}), value)
        else:
            base[key] = value
    return base


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def copy_project(destination: Path, changes: dict) -> None:
    for name in PROJECT_FILES:
        source = REPO / name
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    params = yaml.safe_load((destination / "params.yaml").read_text())
    (destination / "params.yaml").write_text(yaml.safe_dump(_merge(params, changes)))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A repository copy with tiny params after `dvc repro`, and the environment it ran in."""
    project = tmp_path_factory.mktemp("project")
    copy_project(project, TINY)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'tracking.db'}",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
    }  # fmt: skip
    run(["git", "init", "-q"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "project"], project, env)
    run(["dvc", "repro"], project, env)
    return project, env


def test_repro_writes_sane_metrics_and_is_then_up_to_date(pipeline) -> None:
    project, env = pipeline
    train = json.loads((project / "results/train/metrics.json").read_text())
    evaluation = json.loads((project / "results/evaluate/metrics.json").read_text())
    index = json.loads((project / "results/index/summary.json").read_text())
    assert index["scenes"] == 6 * 3 * 4
    assert train["model_parameters"] > 0 and train["best_epoch"] in (1, 2)
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
    experiment = client.get_experiment_by_name("depthseg")
    (run,) = client.search_runs([experiment.experiment_id])
    card = json.loads((project / "models/model.json").read_text())
    assert run.info.run_id == card["run_id"]
    assert run.data.params["train.epochs"] == "2"
    assert run.data.params["loss.mask.dice"] == "2.0"
    assert len(run.data.tags["data_fingerprint"]) == 12
    assert run.data.tags["git_commit"] != "unknown"
    val_loss = client.get_metric_history(run.info.run_id, "val_loss")
    assert [point.step for point in val_loss] == [1, 2]
    assert "test_mask_iou" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"params.yaml", "model.pt", "model.json", "evaluate"} <= artifacts
    evaluate_files = {a.path for a in client.list_artifacts(run.info.run_id, "evaluate")}
    assert "evaluate/predictions" in evaluate_files
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    scenes = np.random.default_rng(0).normal(size=(2, 6, 64, 64)).astype(np.float32)
    predicted = model.predict(scenes)
    assert predicted.shape == (2, 2, 64, 64)
    assert ((predicted >= 0) & (predicted <= 1)).all()


def test_bad_params_stop_the_stage_with_the_key_named(pipeline, tmp_path: Path) -> None:
    project, env = pipeline
    result = subprocess.run(
        [sys.executable, "src/train.py", "-S", "train.epochs=0"],
        cwd=project, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "train.epochs" in result.stderr and "greater than 0" in result.stderr
