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
import sqlalchemy

from depthseg.core.errors import first_line
from depthseg.core.params import Params
from depthseg.core.secrets import redact
from depthseg.tracking import service as tracking
from depthseg.tuning.objective import Objective, check_space
from depthseg.tuning.results import finish
from depthseg.tuning.storage import TuneError, open_study, storage_url


class CircuitBreaker:
    """Stops the study after ``limit`` consecutive failed trials of this worker that failed the
    same way (same error type): a persistent fault, such as the tracking store down or memory
    exhausted, would otherwise turn a long --timeout into a loop of instant failures."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kind: str | None = None
        self.count = 0
        self.tripped: str | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state != optuna.trial.TrialState.FAIL:
            self.kind, self.count = None, 0
            return
        reason = str(trial.user_attrs.get("fail_reason", "unknown failure"))
        kind = reason.split(":")[0]
        self.count = self.count + 1 if kind == self.kind else 1
        self.kind = kind
        if self.count >= self.limit:
            self.tripped = (
                f"{self.count} trials in a row failed with {kind} (last: {reason[:300]}); "
                "fix the cause, then run tune.py again to continue the study"
            )
            study.stop()


def _storage_failure(error: BaseException) -> BaseException | None:
    """The database error behind ``error``, if there is one (the driver's own, which says
    what happened), however deep: Optuna may raise another error while handling it (5.0 raises
    UnboundLocalError when a trial's last read fails)."""
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    database = [
        found
        for found in chain
        if isinstance(
            found, (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError)
        )
    ]
    drivers = [
        found.orig
        for found in database
        if isinstance(found, sqlalchemy.exc.DBAPIError) and found.orig is not None
    ]
    return (drivers or database or [None])[-1]


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
    breaker = CircuitBreaker(base.tune.max_consecutive_failures)
    with tracking.start_run(base, run_name=f"study {study.study_name}", tags=tags) as run:
        try:
            study.optimize(
                Objective(base, table, archive_path),
                n_trials=n_trials,
                timeout=timeout,
                catch=(Exception,),  # a failing trial is recorded as FAIL; the study goes on
                callbacks=[breaker],
            )
        except KeyboardInterrupt:  # Optuna has marked the running trial FAIL
            interrupted = True
            print("\ntune: interrupted; the study so far:")
        except Exception as error:
            cause = _storage_failure(error)
            if cause is None:
                raise
            # The database went away (a restart, the network): what it holds is kept.
            raise TuneError(
                redact(
                    f"tune: lost the Optuna storage {storage_url(storage, base.tune)} "
                    f"({first_line(cause)[:300]}); its finished trials are kept: run tune.py "
                    "again once it answers, to continue the study"
                )
            ) from None
        finish(study, base, folder, run)
    if interrupted:
        raise KeyboardInterrupt
    if breaker.tripped:
        raise TuneError(f"tune: stopped the study: {breaker.tripped}")
    return study
