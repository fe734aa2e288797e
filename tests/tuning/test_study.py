"""Optuna studies with real Optuna storage, real MLflow and real (tiny) trainings."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from depthseg.core.params import Params, parse_params
from depthseg.tuning.storage import TuneError, open_study
from depthseg.tuning.study import run_study

State = optuna.trial.TrialState


def tiny_params(**tune: object) -> Params:
    return parse_params(
        {
            "model": {"width": 0.125},
            "train": {"batch_size": 4, "workers": 0},
            "tune": {
                "budget": {"epochs": 2, "train_fraction": 1.0, "image_size": 32},
                "space": {
                    "loss.mask.dice": {"low": 0.5, "high": 3.0},
                    "train.optimizer.lr": {"low": 0.005, "high": 0.05, "log": True},
                },
                "pruner": {"name": "none"},
                **tune,
            },
        }
    )


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def study_in(workspace: Path, params: Params, tiny_index, **options) -> optuna.Study:
    table, archive = tiny_index
    return run_study(
        params,
        table,
        archive,
        storage=f"sqlite:///{workspace / 'optuna.db'}",
        folder=workspace / "results",
        **options,
    )


def test_a_study_completes_with_nested_runs_and_a_valid_best_params_file(
    workspace: Path, tiny_index
) -> None:
    params = tiny_params()
    study = study_in(workspace, params, tiny_index, n_trials=3)
    assert [t.state for t in study.trials] == [State.COMPLETE] * 3

    best = yaml.safe_load((workspace / "results/best_params.yaml").read_text())
    merged = params.model_dump()
    merged["loss"]["mask"]["dice"] = best["loss"]["mask"]["dice"]
    merged["train"]["optimizer"]["lr"] = best["train"]["optimizer"]["lr"]
    assert parse_params(merged).train.optimizer.lr == study.best_params["train.optimizer.lr"]
    header = (workspace / "results/best_params.yaml").read_text().splitlines()[1]
    assert "dvc exp run -S 'loss.mask.dice=" in header
    assert (workspace / "results/optimization_history.png").stat().st_size > 0

    client = MlflowClient()
    experiment = client.get_experiment_by_name("depthseg")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3
    assert {r.data.tags["optuna_state"] for r in children} == {"COMPLETE"}
    # Each trial run records what the trial trained with: its suggestions and the budget.
    by_number = {int(r.data.tags["optuna_trial"]): r.data.params for r in children}
    for trial in study.trials:
        recorded = by_number[trial.number]
        assert recorded["train.epochs"] == "2" and recorded["train.image_sizes"] == "[32]"
        assert float(recorded["train.optimizer.lr"]) == trial.params["train.optimizer.lr"]
    assert all(len(client.get_metric_history(r.info.run_id, "val_loss")) == 2 for r in children)
    assert parent.data.metrics["best_score"] == pytest.approx(study.best_value)
    assert "best.train.optimizer.lr" in parent.data.params
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/optimization_history.png" in artifacts


def test_a_failing_trial_is_recorded_and_the_study_goes_on(workspace: Path, tiny_index) -> None:
    params = tiny_params(
        space={
            "loss.depth.rmse": {"low": 0.0, "high": 1.0},
            "loss.mask.bce": {"low": 0.0, "high": 1.0},
        }
    )
    study = open_study(params.tune, storage=f"sqlite:///{workspace / 'optuna.db'}")
    # Every loss weight zero: the loss is refused when the trial builds it.
    study.enqueue_trial({"loss.depth.rmse": 0.0, "loss.mask.bce": 0.0})
    with_zero_dice = params.model_copy(
        update={"loss": params.loss.model_copy(update={"mask": params.loss.mask.model_copy(
            update={"dice": 0.0})})}
    )  # fmt: skip
    study = study_in(workspace, with_zero_dice, tiny_index, n_trials=2)
    first, second = study.trials
    assert first.state == State.FAIL
    assert "loss weight" in first.user_attrs["fail_reason"]
    assert second.state == State.COMPLETE


def test_a_hopeless_trial_is_pruned(workspace: Path, tiny_index) -> None:
    params = tiny_params(
        pruner={"name": "median", "startup_trials": 1, "warmup_epochs": 0},
        space={
            "loss.mask.bce": {"low": 0.0, "high": 1.0},
            "loss.mask.dice": {"low": 0.0, "high": 2.0},
        },
    )
    study = open_study(params.tune, storage=f"sqlite:///{workspace / 'optuna.db'}")
    study.enqueue_trial({"loss.mask.bce": 1.0, "loss.mask.dice": 2.0})
    # No mask loss at all: the mask head never learns, so its score trails from the first epoch.
    study.enqueue_trial({"loss.mask.bce": 0.0, "loss.mask.dice": 0.0})
    study = study_in(workspace, params, tiny_index, n_trials=2)
    assert [t.state for t in study.trials] == [State.COMPLETE, State.PRUNED]
    client = MlflowClient()
    pruned = client.search_runs(
        [client.get_experiment_by_name("depthseg").experiment_id],
        filter_string="tags.optuna_trial = '1'",
    )
    assert pruned[0].data.tags["optuna_state"] == "PRUNED"


def test_running_again_with_the_same_name_adds_to_the_study(workspace: Path, tiny_index) -> None:
    params = tiny_params()
    study_in(workspace, params, tiny_index, n_trials=1)
    study = study_in(workspace, params, tiny_index, n_trials=1)
    assert len(study.trials) == 2
    assert study.trials[0].params != study.trials[1].params


def test_two_objectives_give_a_pareto_front(workspace: Path, tiny_index) -> None:
    study = study_in(workspace, tiny_params(objective="pareto"), tiny_index, n_trials=3)
    assert len(study.directions) == 2
    front = study.best_trials
    assert 1 <= len(front) <= 3
    assert all(len(trial.values) == 2 for trial in front)
    assert (workspace / "results/pareto_front.png").is_file()
    best = yaml.safe_load((workspace / "results/best_params.yaml").read_text())
    assert best["train"]["optimizer"]["lr"] in {t.params["train.optimizer.lr"] for t in front}


def test_a_space_key_that_is_not_a_param_is_refused(workspace: Path, tiny_index) -> None:
    params = tiny_params(space={"train.learning_rate": {"low": 0.1, "high": 0.2}})
    with pytest.raises(TuneError, match=r"train\.learning_rate"):
        study_in(workspace, params, tiny_index, n_trials=1)


def test_a_model_without_depth_is_refused_an_objective_that_ranks_by_depth(
    workspace: Path, tiny_index
) -> None:
    raw = tiny_params().model_dump()
    raw |= {"model": {**raw["model"], "name": "masknet"}, "registry": {"score": "mask_iou"}}
    raw["loss"]["depth"] = {"rmse": 0.0, "ssim": 0.0}
    with pytest.raises(TuneError, match=r"masknet, which predicts no depth.*val depth RMSE"):
        study_in(workspace, parse_params(raw), tiny_index, n_trials=1)
    assert not (workspace / "optuna.db").exists()  # refused before any study was opened


def test_a_study_cannot_change_its_objectives(workspace: Path) -> None:
    storage = f"sqlite:///{workspace / 'optuna.db'}"
    open_study(tiny_params().tune, storage=storage)
    with pytest.raises(TuneError, match="other objectives"):
        open_study(tiny_params(objective="pareto").tune, storage=storage)


def test_a_journal_file_is_a_storage(workspace: Path, tiny_index) -> None:
    table, archive = tiny_index
    study = run_study(
        tiny_params(), table, archive, storage=str(workspace / "study.journal"),
        n_trials=1, folder=workspace / "results",
    )  # fmt: skip
    assert (workspace / "study.journal").stat().st_size > 0
    assert study.trials[0].state == State.COMPLETE
    assert mlflow.get_tracking_uri().startswith("sqlite:///")


def test_a_persistent_fault_stops_the_study_after_three_failures(
    workspace: Path, tiny_index
) -> None:
    # A budget of 1% of 16 training scenes leaves none: every trial fails the same way at once.
    params = tiny_params(budget={"epochs": 1, "train_fraction": 0.01, "image_size": 32})
    with pytest.raises(TuneError, match="3 trials in a row failed with TrainingError"):
        study_in(workspace, params, tiny_index, n_trials=10)
    study = optuna.load_study(study_name="depthseg", storage=f"sqlite:///{workspace / 'optuna.db'}")
    assert [trial.state for trial in study.trials] == [State.FAIL] * 3
