"""What a study leaves: the best params (in params.yaml's layout), plots and a summary table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import optuna
import pandas as pd
import yaml

from depthseg.core.files import replaced_atomically
from depthseg.core.params import Params, parse_params
from depthseg.core.params_file import apply_override
from depthseg.experiments import dvc_cli
from depthseg.tracking.service import TrackedRun
from depthseg.tuning.objective import SCORE

matplotlib.use("Agg")


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


def finish(study: optuna.Study, base: Params, folder: Path, run: TrackedRun) -> None:
    """Best params file, plots and the parent ``run``'s record; printed summary."""
    best = best_trials(study)
    if best:
        command = write_best_params(best[0], base, folder / "best_params.yaml")
        run.log_params({f"best.{key}": value for key, value in best[0].params.items()})
        names = ["mask_iou", "depth_rmse"] if len(best[0].values) == 2 else ["score"]
        run.log_metrics(dict(zip([f"best_{n}" for n in names], best[0].values, strict=True)))
        run.log_artifact(folder / "best_params.yaml")
    for plot in save_plots(study, folder):
        run.log_artifact(plot, "plots")
    print(summary_table(study))
    if best:
        print(f"best params: {folder / 'best_params.yaml'}\napply them with:\n  {command}")
    else:
        print("no trial has completed yet: nothing to write")


def queue_best(study: optuna.Study) -> str | None:
    """Queue the best trial's params as the DVC experiment ``tune-STUDY-TRIAL`` (a full
    training with the workspace's params and the trial's values); None if none completed."""
    best = best_trials(study)
    if not best:
        return None
    name = f"tune-{study.study_name}-{best[0].number}"
    dvc_cli.queue(name, best[0].params)
    return name
