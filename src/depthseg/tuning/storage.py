"""Where a study lives: its Optuna storage, sampler and pruner; several workers share one."""

from __future__ import annotations

import contextlib
import fcntl
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import sqlalchemy

from depthseg.core.errors import DepthsegError, first_line
from depthseg.core.params import TuneParams
from depthseg.core.secrets import redact

DEFAULT_STORAGE = "sqlite:///optuna.db"


class TuneError(DepthsegError, RuntimeError):
    """A study cannot run as asked; the message says why."""


#: Connections per worker: the trial's and the heartbeat thread's, and one to spare.
_POOL = {"pool_size": 2, "max_overflow": 1}
#: The key of the PostgreSQL advisory lock that serialises creating Optuna's tables.
_SCHEMA_LOCK_KEY = 0x6465707468  # "depth"


@contextmanager
def _creation_lock(url: str) -> Iterator[None]:
    """Serialise opening a storage whose tables may not exist yet: workers started together on
    a new database would each create them, and all but one fail. SQLite: a file lock beside the
    database (SQLite creates the file before the tables). PostgreSQL: an advisory lock, which
    holds across machines. Either costs milliseconds, so it is always taken."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    elif url.startswith("postgresql"):
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as connection:  # closing it releases the lock
                connection.execute(sqlalchemy.text(f"SELECT pg_advisory_lock({_SCHEMA_LOCK_KEY})"))
                yield
        finally:
            engine.dispose()
    else:
        yield


def _engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    # A long study outlives connections (server restarts, idle timeouts): test each one before
    # use, and keep the pool small, as every worker holds its own.
    return {"pool_pre_ping": True, **_POOL}


class _RDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage whose heartbeat survives a moment without the database: Optuna's
    heartbeat thread ends at its first error, and the trial would then be failed as stale
    although it runs on. A missed beat is retried at the next interval instead."""

    def record_heartbeat(self, trial_id: int) -> None:
        # The database is away for a moment; tune.grace_period allows for missed beats.
        with contextlib.suppress(optuna.exceptions.StorageInternalError):
            super().record_heartbeat(trial_id)


def storage_url(url: str | None, config: TuneParams) -> str:
    """--storage, else tune.storage, else the default."""
    return url or config.storage or DEFAULT_STORAGE


def open_storage(url: str | None, config: TuneParams) -> optuna.storages.BaseStorage:
    """An RDB storage with heartbeats (a killed worker's trial is failed and retried), or a
    journal file for ``*.journal`` paths (no heartbeat: Optuna's journal has none)."""
    url = storage_url(url, config)
    if "://" not in url:
        if not url.endswith(".journal"):
            raise TuneError(f"--storage {url!r}: give a storage URL or a path ending in .journal")
        backend = optuna.storages.journal.JournalFileBackend(url)
        return optuna.storages.JournalStorage(backend)
    try:
        with _creation_lock(url), warnings.catch_warnings():
            # Heartbeats are "experimental" in Optuna's words since 2.8; used knowingly.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _RDBStorage(
                url,
                engine_kwargs=_engine_options(url),
                heartbeat_interval=config.heartbeat_interval,
                grace_period=config.grace_period,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=1
                ),
            )
    except Exception as error:  # driver missing, server down, bad URL
        message = f"cannot open the Optuna storage {url}: {first_line(error)}"
        raise TuneError(redact(message)) from None


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
