"""One trial: a real, short training with the suggested params, recorded as a nested MLflow run."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from depthseg.core.errors import DepthsegError
from depthseg.core.params import Params, SearchDimension, parse_params
from depthseg.core.params_file import apply_override
from depthseg.core.secrets import redact
from depthseg.engine.assembly import build_run
from depthseg.engine.callbacks import EpochCallback, EpochReport
from depthseg.engine.loop import Trainer
from depthseg.engine.preview import Preview
from depthseg.objectives.metrics import score
from depthseg.tracking import service as tracking
from depthseg.tracking.callbacks import epoch_logger
from depthseg.tracking.service import TrackedRun
from depthseg.tuning.storage import TuneError, trial_sampler

#: The single objective: both in [0, 1], neither depends on the loss weights being searched.
SCORE = "val_mask_iou - val_depth_rmse"


def objective_values(report: EpochReport, objective: str) -> float | tuple[float, float]:
    if objective == "pareto":
        return report.val["mask_iou"], report.val["depth_rmse"]
    return score(report.val)


def suggest(trial: optuna.Trial, space: dict[str, SearchDimension]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, dimension in space.items():
        if dimension.choices is not None:
            values[key] = trial.suggest_categorical(key, dimension.choices)
        else:
            assert dimension.low is not None and dimension.high is not None
            values[key] = trial.suggest_float(key, dimension.low, dimension.high, log=dimension.log)
    return values


def trial_params(base: Params, values: dict[str, Any]) -> Params:
    """The base params with a trial's values and the per-trial budget; validated."""
    raw = base.model_dump()
    budget = base.tune.budget
    for key, value in {
        **values,
        "train.epochs": budget.epochs,
        "train.train_fraction": budget.train_fraction,
        "train.scenes_per_epoch": None,  # one pass over the trial's share of the train split
        "train.image_sizes": [budget.image_size],
        "train.resume": False,
        "train.preview_images": 0,
    }.items():
        apply_override(raw, key, value)
    return parse_params(raw, "trial params")


def check_space(base: Params) -> None:
    """The objective must be measurable, and every key of tune.space must be a param, its range
    valid for that param."""
    if not base.model.predicts_depth:
        raise TuneError(
            f"model.name is {base.model.name}, which predicts no depth, but every "
            f"tune.objective ({base.tune.objective} too) ranks trials by their val depth RMSE: "
            "tune a model that predicts depth"
        )
    for key, dimension in base.tune.space.items():
        probe = dimension.choices if dimension.choices is not None else [dimension.low]
        raw = base.model_dump()
        for value in probe:
            try:
                apply_override(raw, key, value)
                parse_params(raw, f"tune.space.{key}")
            except DepthsegError as error:
                raise TuneError(f"tune.space: {key} is not a usable param: {error}") from None


def _reason(error: Exception) -> str:
    return redact(f"{type(error).__name__}: {error}")[:4000]  # an MLflow tag holds 5,000


@dataclass
class Objective:
    base: Params
    table: pd.DataFrame
    archive_path: Path

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        # Seeded by trial number: one worker repeats its suggestions, a study continued later
        # or shared by several workers does not draw the same values twice.
        trial.study.sampler = trial_sampler(self.base.tune.seed, trial.number)
        try:
            params = trial_params(self.base, suggest(trial, self.base.tune.space))
        except DepthsegError as error:  # a suggested value that the params schema refuses
            trial.set_user_attr("fail_reason", _reason(error))
            raise
        tags = {"optuna_study": trial.study.study_name, "optuna_trial": str(trial.number)}
        # The run records the params the trial really trained with, budget included.
        with tracking.start_run(
            params, run_name=f"trial {trial.number}", tags=tags, nested=True
        ) as run:
            try:
                history = self._train(trial, params, run)
            except optuna.TrialPruned:
                run.set_tags({"optuna_state": "PRUNED"})
                pruned = True
            except Exception as error:
                trial.set_user_attr("fail_reason", _reason(error))
                run.set_tags({"optuna_state": "FAIL", "optuna_fail_reason": _reason(error)})
                raise
            else:
                run.set_tags({"optuna_state": "COMPLETE"})
                pruned = False
        if pruned:
            raise optuna.TrialPruned
        return objective_values(history[-1], self.base.tune.objective)

    def _train(self, trial: optuna.Trial, params: Params, run: TrackedRun) -> list[EpochReport]:
        with tempfile.TemporaryDirectory(prefix="depthseg-trial-") as checkpoints:
            trainer = Trainer(
                build_run(params, self.table, self.archive_path, Path(checkpoints)),
                [epoch_logger(run), self._reporter(trial, self.base.tune.objective)],
            )
            return trainer.fit()

    @staticmethod
    def _reporter(trial: optuna.Trial, objective: str) -> EpochCallback:
        def report(epoch: EpochReport, _preview: Preview) -> None:
            if not math.isfinite(score(epoch.val)):
                raise TuneError(f"validation metrics are not finite in epoch {epoch.epoch}")
            if objective == "pareto":  # Optuna cannot prune multi-objective trials
                return
            trial.report(score(epoch.val), epoch.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned

        return report
