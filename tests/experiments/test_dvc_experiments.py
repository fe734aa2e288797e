"""DVC experiments that keep their metrics and plots, linked to their MLflow runs; the loss study
and the tuned params as queued experiments. Real DVC, MLflow and Optuna on a tiny project."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from repro_project import clone_project, run

pytestmark = pytest.mark.slow

ONE_SHORT_EPOCH = ["-S", "train.epochs=1", "-S", "train.image_sizes=[32]"]
LEARNING_RATES = {"exp-a": 0.05, "exp-b": 0.02}


@pytest.fixture(scope="module")
def experiments(pipeline, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A clone of the tiny project (results committed) with two experiments run in it."""
    project, env = pipeline
    copy = clone_project(project, tmp_path_factory.mktemp("experiments") / "project")
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{copy / 'tracking.db'}"}
    for name, lr in LEARNING_RATES.items():
        command = ["dvc", "exp", "run", "-n", name, *ONE_SHORT_EPOCH]
        run([*command, "-S", f"train.optimizer.lr={lr}"], copy, env)
    return copy, env


def revisions(shown: list[dict]) -> dict[str, dict]:
    """name (or 'baseline') -> data, from `dvc exp show --json`."""
    found = {}
    for entry in shown:
        if entry["rev"] != "workspace":
            found["baseline"] = entry["data"]
        for experiment in entry.get("experiments") or []:
            for revision in experiment["revs"]:
                found[revision["name"]] = revision["data"]
    return found


def metrics_of(data: dict, path: str) -> dict:
    return data["metrics"][path]["data"]


def exp_show(project: Path, env: dict[str, str]) -> dict[str, dict]:
    return revisions(json.loads(run(["dvc", "exp", "show", "--json"], project, env).stdout))


def test_exp_show_holds_the_metrics_of_the_commit_and_every_experiment(experiments) -> None:
    shown = exp_show(*experiments)
    assert {"baseline", *LEARNING_RATES} <= shown.keys()
    for name in ("baseline", *LEARNING_RATES):
        evaluation = metrics_of(shown[name], "results/evaluate/metrics.json")
        training = metrics_of(shown[name], "results/train/metrics.json")
        assert 0 <= evaluation["mask_iou"] <= 1 and evaluation["depth_rmse"] > 0
        assert len(training["mlflow_run_id"]) == 32  # the link to the MLflow run
    for name, lr in LEARNING_RATES.items():
        assert shown[name]["params"]["params.yaml"]["data"]["train"]["optimizer"]["lr"] == lr
        training = metrics_of(shown[name], "results/train/metrics.json")
        assert training["final"]["image_size"] == 32  # its own metrics, not the baseline's


def test_exp_diff_and_metrics_diff_list_what_changed(experiments) -> None:
    project, env = experiments
    diff = json.loads(run(["dvc", "exp", "diff", "exp-a", "exp-b", "--json"], project, env).stdout)
    assert diff["params"]["params.yaml"]["train.optimizer.lr"]["new"] == LEARNING_RATES["exp-b"]
    rmse = diff["metrics"]["results/evaluate/metrics.json"]["depth_rmse"]
    assert rmse["diff"] == pytest.approx(rmse["new"] - rmse["old"])
    metrics_diff = json.loads(
        run(["dvc", "metrics", "diff", "HEAD", "exp-a", "--json"], project, env).stdout
    )
    assert "final.image_size" in metrics_diff["results/train/metrics.json"]  # 64 px against 32


def test_plots_diff_draws_the_commit_and_an_experiment_together(experiments) -> None:
    project, env = experiments
    plots = json.loads(
        run(["dvc", "plots", "diff", "HEAD", "exp-b", "--json"], project, env).stdout
    )
    history = plots["data"]["results/train/history.csv"][0]
    assert history["revisions"] == ["HEAD", "exp-b"]
    assert {row["rev"] for row in history["content"]["data"]["values"]} == {"HEAD", "exp-b"}


def test_each_experiments_mlflow_run_carries_its_name_and_baseline(experiments) -> None:
    project, env = experiments
    shown = exp_show(project, env)
    head = run(["git", "rev-parse", "HEAD"], project, env).stdout.strip()
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    for name in LEARNING_RATES:
        run_id = metrics_of(shown[name], "results/train/metrics.json")["mlflow_run_id"]
        tags = client.get_run(run_id).data.tags
        assert tags["dvc_experiment"] == name
        assert tags["dvc_baseline_rev"] == head


def test_the_loss_study_runs_three_queued_experiments_into_the_default_store(
    experiments,
) -> None:
    project, env = experiments
    env = {key: value for key, value in env.items() if key != "MLFLOW_TRACKING_URI"}
    command = [sys.executable, "src/loss_study.py", "--prefix", "ls", *ONE_SHORT_EPOCH]
    printed = run(command, project, env).stdout
    presets = ("rmse_bce_dice", "ssim_dice", "rmse_bce")
    assert all(f"ls-{preset}" in printed for preset in presets)
    shown = exp_show(project, env)
    client = MlflowClient(
        f"sqlite:///{project / 'mlflow.db'}"
    )  # the repository's, not a temp copy's
    for preset in presets:
        data = shown[f"ls-{preset}"]
        assert data["params"]["params.yaml"]["data"]["loss"]["preset"] == preset
        run_id = metrics_of(data, "results/train/metrics.json")["mlflow_run_id"]
        run_record = client.get_run(run_id)
        assert run_record.data.tags["dvc_experiment"] == f"ls-{preset}"
        artifacts = Path(run_record.info.artifact_uri.removeprefix("file://"))
        assert artifacts.is_relative_to(project) and (artifacts / "model.pt").is_file()


def test_the_best_tuned_params_are_queued_as_an_experiment(experiments, tmp_path: Path) -> None:
    project, env = experiments
    budget = (
        "tune.budget.epochs=1 tune.budget.image_size=32 tune.budget.train_fraction=1.0 "
        "tune.pruner.name=none"
    )
    command = [
        sys.executable, "src/tune.py", "--storage", f"sqlite:///{tmp_path / 'study.db'}",
        "--study-name", "q", "--n-trials", "1", "-S", budget, "--queue-best",
    ]  # fmt: skip
    assert "queued DVC experiment tune-q-0" in run(command, project, env).stdout
    queue = run(["dvc", "queue", "status"], project, env).stdout
    assert "tune-q-0" in queue and "Queued" in queue
    assert os.path.exists(project / "results/tune/best_params.yaml")
