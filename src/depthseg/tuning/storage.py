"""Where a study lives: its Optuna storage, sampler and pruner; several workers share one."""

from __future__ import annotations

import fcntl
import warnings
from contextlib import contextmanager
from pathlib import Path

import optuna

from depthseg.core.errors import DepthsegError
from depthseg.core.params import TuneParams
from depthseg.core.secrets import redact

DEFAULT_STORAGE = "sqlite:///optuna.db"


class TuneError(DepthsegError, RuntimeError):
    """A study cannot run as asked; the message says why."""


@contextmanager
def _creation_lock(url: str):
    """Serialise opening an SQLite storage: SQLite creates the file before Optuna creates its
    tables, so a worker that finds the file may still race another on the schema. The lock is
    always taken (it costs milliseconds), whether the file exists or not."""
    if not url.startswith("sqlite:///"):
        yield
        return
    path = Path(url.removeprefix("sqlite:///"))
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
        with _creation_lock(url), warnings.catch_warnings():
            # Heartbeats are "experimental" in Optuna's words since 2.8; used knowingly.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
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
        raise TuneError(redact(f"cannot open the Optuna storage {url}: {error}")) from None


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
