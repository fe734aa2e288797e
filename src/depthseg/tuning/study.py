"""Optuna studies over loss weights and learning rates; every trial is a real, short training.

The search space and the per-trial budget live in ``params.yaml`` (``tune``). A trial applies its
suggestions to the params, validates them with the same schema as the stages, and trains with the
same ``Trainer`` as the train stage. Each trial is a nested MLflow run under one parent run per
invocation of ``tune.py``.
"""

from __future__ import annotations

import fcntl
import math
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import optuna
import pandas as pd
import yaml

from depthseg.tracking import service as tracking
from depthseg.core.params import (
    Params,
    SearchDimension,
    TuneParams,
    apply_override,
    parse_params,
)
from depthseg.core.errors import DepthsegError
from depthseg.core.files import replaced_atomically
from depthseg.stages.pipeline_old import log_epoch
from depthseg.engine.loop import EpochReport, Trainer

matplotlib.use("Agg")

DEFAULT_STORAGE = "sqlite:///optuna.db"
#: The single objective: both in [0, 1], neither depends on the loss weights being searched.
SCORE = "val_mask_iou - val_depth_rmse"


class TuneError(DepthsegError, RuntimeError):
    """A study cannot run as asked; the message says why."""


def score(report: EpochReport) -> float:
    return report.val["mask_iou"] - report.val["depth_rmse"]


def objective_values(report: EpochReport, objective: str) -> float | tuple[float, float]:
    if objective == "pareto":
        return report.val["mask_iou"], report.val["depth_rmse"]
    return score(report)


# -- storage -------------------------------------------------------------------------------------


@contextmanager
def _creation_lock(url: str):
    """Serialise creating a new SQLite file: concurrent first connections race on its tables."""
    path = Path(url.removeprefix("sqlite:///"))
    if not url.startswith("sqlite:///") or path.exists():
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def open_storage(url: str | None, config: TuneParams) -> optuna.storages.BaseStorage:
    """An RDB storage with heartbeats (a killed worker's trial is failed and retried), or a
    journal file for ``*.journal`` paths (no heartbeat: Optuna's journal has none)."""
    url = url or config.storage or DEFAULT_STORAGE
    if "://" not in url:
        if not url.endswith(".journal"):
            raise TuneError(f"--storage {url!r}: give a storage URL or a path ending in .journal")
        backend = optuna.storages.journal.JournalFileBackend(url)
        return optuna.storages.JournalStorage(backend)
    try:
        with _creation_lock(url):
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {},
                heartbeat_interval=config.heartbeat_interval,
                grace_period=config.grace_period,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=1
                ),
            )
    except Exception as error:  # driver missing, server down, bad URL
        raise TuneError(f"cannot open the Optuna storage {url}: {error}") from None


def trial_sampler(seed: int, trial_number: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed * 100_003 + trial_number)


def _pruner(config: TuneParams) -> optuna.pruners.BasePruner:
    if config.objective == "pareto" or config.pruner.name == "none":
        return optuna.pruners.NopPruner()
    if config.pruner.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.budget.epochs)
    return optuna.pruners.MedianPruner(
        n_startup_trials=config.pruner.startup_trials, n_warmup_steps=config.pruner.warmup_epochs
    )


def open_study(
    config: TuneParams, study_name: str | None = None, storage: str | None = None
) -> optuna.Study:
    """Create the study, or continue it when one of that name is in the storage."""
    directions = ["maximize", "minimize"] if config.objective == "pareto" else ["maximize"]
    study = optuna.create_study(
        storage=open_storage(storage, config),
        study_name=study_name or config.study_name,
        sampler=trial_sampler(config.seed, 0),
        pruner=_pruner(config),
        directions=directions,
        load_if_exists=True,
    )
    if [d.name.lower() for d in study.directions] != directions:
        raise TuneError(
            f"study {study.study_name!r} exists with other objectives: use another --study-name "
            f"or set tune.objective back"
        )
    return study


# -- trials --------------------------------------------------------------------------------------


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
        "train.image_sizes": [budget.image_size],
        "train.resume": False,
        "train.preview_images": 0,
    }.items():
        apply_override(raw, key, value)
    return parse_params(raw, "trial params")


def check_space(base: Params) -> None:
    """Every key of tune.space must be a param, and its range valid for that param."""
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
    return f"{type(error).__name__}: {error}"[:4000]  # an MLflow tag holds at most 5,000


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
        with tracking.start_run(params, run_name=f"trial {trial.number}", tags=tags, nested=True):
            try:
                history = self._train(trial, params)
            except optuna.TrialPruned:
                tracking.set_tags({"optuna_state": "PRUNED"})
                pruned = True
            except Exception as error:
                trial.set_user_attr("fail_reason", _reason(error))
                tracking.set_tags({"optuna_state": "FAIL", "optuna_fail_reason": _reason(error)})
                raise
            else:
                tracking.set_tags({"optuna_state": "COMPLETE"})
                pruned = False
        if pruned:
            raise optuna.TrialPruned
        return objective_values(history[-1], self.base.tune.objective)

    def _train(self, trial: optuna.Trial, params: Params) -> list[EpochReport]:
        with tempfile.TemporaryDirectory(prefix="depthseg-trial-") as checkpoints:
            trainer = Trainer(
                params,
                self.table,
                self.archive_path,
                Path(checkpoints),
                callbacks=[log_epoch, self._reporter(trial, self.base.tune.objective)],
            )
            return trainer.fit()

    @staticmethod
    def _reporter(trial: optuna.Trial, objective: str) -> Callable[[Trainer, EpochReport], None]:
        def report(trainer: Trainer, epoch: EpochReport) -> None:
            if not math.isfinite(score(epoch)):
                raise TuneError(f"validation metrics are not finite in epoch {epoch.epoch}")
            if objective == "pareto":  # Optuna cannot prune multi-objective trials
                return
            trial.report(score(epoch), epoch.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned

        return report


# -- results -------------------------------------------------------------------------------------


def best_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The best trial, or the Pareto front best score first; empty when none completed."""
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return []
    if len(study.directions) == 1:
        return [study.best_trial]
    return sorted(study.best_trials, key=lambda t: t.values[0] - t.values[1], reverse=True)


def nested_params(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        apply_override(nested, key, value)
    return nested


def exp_run_command(flat: dict[str, Any]) -> str:
    def scalar(value: Any) -> str:  # one line: YAML adds a document-end marker after scalars
        return yaml.safe_dump(value, default_flow_style=True).splitlines()[0]

    overrides = " ".join(f"-S '{key}={scalar(value)}'" for key, value in flat.items())
    return f"dvc exp run {overrides}"


def write_best_params(trial: optuna.trial.FrozenTrial, base: Params, path: Path) -> str:
    """results/tune/best_params.yaml in params.yaml's layout, checked against the schema."""
    raw = base.model_dump()
    for key, value in trial.params.items():
        apply_override(raw, key, value)
    parse_params(raw, "best params")
    command = exp_run_command(trial.params)
    values = ", ".join(f"{v:.4f}" for v in trial.values)
    header = f"# Best trial {trial.number} of the study ({values}). Apply with:\n#   {command}\n"
    with replaced_atomically(path) as partial:
        partial.write_text(header + yaml.safe_dump(nested_params(trial.params), sort_keys=False))
    return command


def save_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optimization history, parameter importances and (two objectives) the Pareto front."""
    from matplotlib import pyplot
    from optuna.visualization import matplotlib as plots

    folder.mkdir(parents=True, exist_ok=True)
    names = ["iou", "rmse"] if len(study.directions) == 2 else None
    drawers: dict[str, Callable[[], Any]] = {
        "param_importances": lambda: plots.plot_param_importances(
            study, target=(lambda t: t.values[0] - t.values[1]) if names else None,
            target_name=SCORE,
        ),
    }  # fmt: skip
    if names:
        drawers["pareto_front"] = lambda: plots.plot_pareto_front(study, target_names=names)
    else:
        drawers["optimization_history"] = lambda: plots.plot_optimization_history(study)
    saved = []
    for name, draw in drawers.items():
        try:
            axes = draw()
        except (ValueError, RuntimeError) as error:  # e.g. importances need two finished trials
            print(f"tune: no {name} plot yet ({error})")
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        figure.savefig(folder / f"{name}.png", dpi=100)
        pyplot.close(figure)
        saved.append(folder / f"{name}.png")
    return saved


def summary_table(study: optuna.Study, rows: int = 5) -> str:
    """The best trials so far, one line each."""
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(study.directions) == 1:
        trials.sort(key=lambda t: t.value, reverse=True)
    else:
        trials = best_trials(study)
    states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict()
    lines = [f"study {study.study_name}: {len(study.trials)} trials {states}"]
    objectives = ["score"] if len(study.directions) == 1 else ["mask_iou", "depth_rmse"]
    for trial in trials[:rows]:
        values = "  ".join(f"{n} {v:.4f}" for n, v in zip(objectives, trial.values, strict=True))
        params = "  ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
        )
        lines.append(f"  #{trial.number:<4} {values}  {params}")
    return "\n".join(lines)


def finish(study: optuna.Study, base: Params, folder: Path) -> None:
    """Best params file, plots and the parent run's record; printed summary."""
    best = best_trials(study)
    if best:
        command = write_best_params(best[0], base, folder / "best_params.yaml")
        tracking.log_params({f"best.{key}": value for key, value in best[0].params.items()})
        names = ["mask_iou", "depth_rmse"] if len(best[0].values) == 2 else ["score"]
        tracking.log_metrics(dict(zip([f"best_{n}" for n in names], best[0].values, strict=True)))
        tracking.log_artifact(folder / "best_params.yaml")
    for plot in save_plots(study, folder):
        tracking.log_artifact(plot, "plots")
    print(summary_table(study))
    if best:
        print(f"best params: {folder / 'best_params.yaml'}\napply them with:\n  {command}")
    else:
        print("no trial has completed yet: nothing to write")


def run_study(
    base: Params,
    table: pd.DataFrame,
    archive_path: Path,
    *,
    study_name: str | None = None,
    storage: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    folder: Path,
) -> optuna.Study:
    """Run trials (adding to the study of that name if it exists); Ctrl-C stops cleanly."""
    check_space(base)
    study = open_study(base.tune, study_name, storage)
    tags = {"optuna_study": study.study_name, "optuna_objective": base.tune.objective}
    interrupted = False
    with tracking.start_run(base, run_name=f"study {study.study_name}", tags=tags):
        try:
            study.optimize(
                Objective(base, table, archive_path),
                n_trials=n_trials,
                timeout=timeout,
                catch=(Exception,),  # a failing trial is recorded as FAIL; the study goes on
            )
        except KeyboardInterrupt:  # Optuna has marked the running trial FAIL
            interrupted = True
            print("\ntune: interrupted; the study so far:")
        finish(study, base, folder)
    if interrupted:
        raise KeyboardInterrupt
    return study
