"""Optuna studies over loss weights and learning rates; every trial is a real, short training.

The search space and the per-trial budget live in ``params.yaml`` (``tune``). A trial applies its
suggestions to the params, validates them with the same schema as the stages, and trains with the
same ``Trainer`` as the train stage. Each trial is a nested MLflow run under one parent run per
invocation of ``tune.py``.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd

from depthseg.core.params import Params
from depthseg.tracking import service as tracking
from depthseg.tuning.objective import Objective, check_space
from depthseg.tuning.results import finish
from depthseg.tuning.storage import open_study


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
