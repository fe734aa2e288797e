"""DVC experiments that keep their metrics and plots, linked to their MLflow runs; the loss study
and the tuned params as queued experiments. Real DVC, MLflow and Optuna on a tiny project."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from repro_project import clone_project, run

pytestmark = pytest.mark.slow

ONE_SHORT_EPOCH = ["-S", "train.epochs=1", "-S", "train.image_sizes=[32]"]
PRESETS = ("rmse_bce_dice", "ssim_dice", "rmse_bce")
NAMES = [f"ls-{preset}" for preset in PRESETS]


@pytest.fixture(scope="module")
def experiments(pipeline, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """A clone of the tiny project (results committed) after the loss study: three queued DVC
    experiments run in temporary copies, recorded in the repository's default MLflow store."""
    project, env = pipeline
    copy = clone_project(project, tmp_path_factory.mktemp("experiments") / "project")
    env = {key: value for key, value in env.items() if key != "MLFLOW_TRACKING_URI"}
    command = [sys.executable, "src/loss_study.py", "--prefix", "ls", *ONE_SHORT_EPOCH]
    printed = run(command, copy, env).stdout
    return copy, env, printed


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


def test_the_loss_study_prints_one_row_per_preset(experiments) -> None:
    _, _, printed = experiments
    rows = [line for line in printed.splitlines() if line.strip().startswith("ls-")]
    assert sorted(row.split()[0] for row in rows) == sorted(NAMES)
    assert all(row.split()[1] in PRESETS for row in rows)


def test_exp_show_holds_the_metrics_of_the_commit_and_every_experiment(experiments) -> None:
    project, env, _ = experiments
    shown = exp_show(project, env)
    assert {"baseline", *NAMES} <= shown.keys()
    for name in ("baseline", *NAMES):
        evaluation = metrics_of(shown[name], "results/evaluate/metrics.json")
        training = metrics_of(shown[name], "results/train/metrics.json")
        assert 0 <= evaluation["mask_iou"] <= 1 and evaluation["depth_rmse"] > 0
        assert len(training["mlflow_run_id"]) == 32  # the link to the MLflow run
    for name, preset in zip(NAMES, PRESETS, strict=True):
        assert shown[name]["params"]["params.yaml"]["data"]["loss"]["preset"] == preset
        training = metrics_of(shown[name], "results/train/metrics.json")
        assert training["final"]["image_size"] == 32  # its own metrics, not the baseline's
    # Each loss trains other weights: exp show gives each experiment its own evaluation.
    evaluated = [metrics_of(shown[name], "results/evaluate/metrics.json") for name in NAMES]
    assert len({(e["mask_iou"], e["depth_rmse"]) for e in evaluated}) == len(NAMES), evaluated


def test_exp_diff_and_metrics_diff_list_what_changed(experiments) -> None:
    project, env, _ = experiments
    first, second = NAMES[0], NAMES[1]
    diff = json.loads(run(["dvc", "exp", "diff", first, second, "--json"], project, env).stdout)
    assert diff["params"]["params.yaml"]["loss.preset"]["new"] == PRESETS[1]
    rmse = diff["metrics"]["results/evaluate/metrics.json"]["depth_rmse"]
    assert rmse["diff"] == pytest.approx(rmse["new"] - rmse["old"])
    metrics_diff = json.loads(
        run(["dvc", "metrics", "diff", "HEAD", first, "--json"], project, env).stdout
    )
    assert "final.image_size" in metrics_diff["results/train/metrics.json"]  # 64 px against 32


def test_plots_diff_draws_the_commit_and_an_experiment_together(experiments) -> None:
    project, env, _ = experiments
    command = ["dvc", "plots", "diff", "HEAD", NAMES[2], "--json"]
    plots = json.loads(run(command, project, env).stdout)
    history = plots["data"]["results/train/history.csv"][0]
    assert history["revisions"] == ["HEAD", NAMES[2]]
    assert {row["rev"] for row in history["content"]["data"]["values"]} == {"HEAD", NAMES[2]}


def test_each_experiments_run_is_in_the_repositorys_store_with_its_name_and_baseline(
    experiments,
) -> None:
    project, env, _ = experiments
    shown = exp_show(project, env)
    head = run(["git", "rev-parse", "HEAD"], project, env).stdout.strip()
    # The repository's own store, not one in the temporary copy a queued experiment runs in.
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    for name in NAMES:
        run_id = metrics_of(shown[name], "results/train/metrics.json")["mlflow_run_id"]
        record = client.get_run(run_id)
        assert record.data.tags["dvc_experiment"] == name
        assert record.data.tags["dvc_baseline_rev"] == head
        artifacts = Path(record.info.artifact_uri.removeprefix("file://"))
        assert artifacts.is_relative_to(project) and (artifacts / "model.pt").is_file()


MASK_LOSSES = ("bce", "ssim", "dice")
MASK_NAMES = [f"ml-{loss}" for loss in MASK_LOSSES]


@pytest.fixture(scope="module")
def mask_study(experiments) -> tuple[Path, dict, str]:
    """The same project after the mask-only study: MaskNet (the original's width) with each mask
    loss alone."""
    project, env, _ = experiments
    command = [sys.executable, "src/loss_study.py", "--mask-only", "--prefix", "ml"]
    full_width = ["-S", "model.width=1.0"]
    return project, env, run([*command, *ONE_SHORT_EPOCH, *full_width], project, env).stdout


def test_the_mask_only_study_trains_masknet_with_each_loss_alone(mask_study) -> None:
    project, env, printed = mask_study
    rows = [line.split() for line in printed.splitlines() if line.strip().startswith("ml-")]
    assert sorted(row[0] for row in rows) == sorted(MASK_NAMES)
    header = next(line for line in printed.splitlines() if "experiment" in line).split()
    assert header[-4:] == ["mask_iou", "mask_dice", "mask_soft_iou", "train_seconds"]
    ious = [float(row[header.index("mask_iou")]) for row in rows]
    assert ious == sorted(ious, reverse=True)  # the best first
    shown = exp_show(project, env)
    for name, loss in zip(MASK_NAMES, MASK_LOSSES, strict=True):
        params = shown[name]["params"]["params.yaml"]["data"]
        assert params["model"]["name"] == "masknet"
        assert {key: params["loss"]["mask"][key] for key in MASK_LOSSES} == {
            key: float(key == loss) for key in MASK_LOSSES
        }
        evaluation = metrics_of(shown[name], "results/evaluate/metrics.json")
        assert 0 <= evaluation["mask_iou"] <= 1 and 0 <= evaluation["mask_soft_iou"] <= 1
        assert not [key for key in evaluation if key.startswith("depth_")]  # none, not NaN
        training = metrics_of(shown[name], "results/train/metrics.json")
        assert training["model_parameters"] == 59_745
        assert "val_depth_rmse" not in training["best"]


def test_the_mask_only_runs_are_tagged_and_registered_apart(mask_study) -> None:
    project, env, _ = mask_study
    shown = exp_show(project, env)
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    for name in MASK_NAMES:
        run_id = metrics_of(shown[name], "results/train/metrics.json")["mlflow_run_id"]
        record = client.get_run(run_id)
        assert record.data.tags["dvc_experiment"] == name
        assert record.data.params["model.name"] == "masknet"
        assert not [key for key in record.data.metrics if "depth" in key]
    versions = client.search_model_versions("name = 'depthseg-masknet'")
    assert len(versions) == len(MASK_NAMES)
    assert {version.tags["outputs"] for version in versions} == {"mask"}
    champion = client.get_model_version_by_alias("depthseg", "champion")
    assert champion.tags.get("outputs", "mask,depth") == "mask,depth"  # untouched


def test_a_failed_experiment_fails_the_loss_study(experiments) -> None:
    project, env, _ = experiments
    # Valid params, but a dataset folder that is not there: fetch fails in every experiment.
    missing = ["-S", "data.source=local", "-S", "data.path=no-such-folder"]
    command = [sys.executable, "src/loss_study.py", "--prefix", "bad", *missing]
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert "failed; `dvc queue logs bad-" in result.stderr
    assert all(f"bad-{preset}" in result.stderr for preset in PRESETS)


def test_the_best_tuned_params_are_queued_as_an_experiment(experiments, tmp_path: Path) -> None:
    project, env, _ = experiments
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
    assert (project / "results/tune/best_params.yaml").is_file()
