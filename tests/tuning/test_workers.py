"""Several `tune.py` workers on one study, as separate processes: started together on a new
storage, stopped or killed, and with the PostgreSQL server restarted under them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from repro_project import run

from depthseg.core.params import TuneParams
from depthseg.tuning.storage import open_storage

pytestmark = pytest.mark.slow

COMPLETE, FAIL, RUNNING = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.FAIL,
    optuna.trial.TrialState.RUNNING,
)
GRACE_PERIOD = 3
TINY_STUDY = [
    "-S",
    "tune.budget.epochs=2 tune.budget.image_size=32 tune.budget.train_fraction=1.0 "
    f"tune.pruner.name=none tune.heartbeat_interval=1 tune.grace_period={GRACE_PERIOD}",
]


def tune_command(storage: str, trials: int, *extra: str) -> list[str]:
    return [
        sys.executable, "src/tune.py", "--storage", storage, "--study-name", "shared",
        "--n-trials", str(trials), *TINY_STUDY, *extra,
    ]  # fmt: skip


def start_worker(command: list[str], project: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A job started in the background inherits SIGINT ignored; a user's terminal does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    opened = open_storage(storage, TuneParams())
    try:
        return optuna.load_study(study_name="shared", storage=opened).trials
    except KeyError:  # the study does not exist yet
        return []
    finally:
        # Polled twice a second: an engine left to the garbage collector keeps its connections
        # open, and the server's max_connections runs out under the workers.
        if isinstance(opened, optuna.storages.RDBStorage):
            opened.remove_session()
            opened.engine.dispose()


def wait_until(condition, storage: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition(trials(storage)):
        assert time.monotonic() < deadline, "the study never got there"
        time.sleep(0.5)


def training(found: list[optuna.trial.FrozenTrial]) -> bool:
    # An epoch reported: the trial is training, past its first imports. A Ctrl-C that lands
    # inside an import's lock callback is swallowed by Python itself.
    return any(t.state == RUNNING and t.intermediate_values for t in found)


@pytest.fixture
def storage_of(request: pytest.FixtureRequest, tmp_path: Path):
    """``storage_of(kind)``: a new, empty storage of that kind (postgresql, sqlite, journal)."""

    def make(kind: str) -> str:
        if kind == "postgresql":  # only these tests skip where PostgreSQL is not installed
            postgres = request.getfixturevalue("postgres")
            return postgres.create_database(f"study_{tmp_path.name}".lower()[:60])
        return str(tmp_path / "study.journal") if kind == "journal" else (
            f"sqlite:///{tmp_path / 'study.db'}"
        )  # fmt: skip

    return make


@pytest.mark.parametrize("kind", ["postgresql", "journal", "sqlite"])
def test_workers_started_together_on_a_new_storage_finish_every_trial(
    pipeline, storage_of, kind: str
) -> None:
    project, env = pipeline
    storage = storage_of(kind)  # nothing in it: every worker would create the tables
    workers = [start_worker(tune_command(storage, 1), project, env) for _ in range(3)]
    errors = [worker.communicate(timeout=600)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0], errors
    found = trials(storage)
    assert [t.state for t in found] == [COMPLETE] * 3
    assert len({tuple(sorted(t.params.items())) for t in found}) == 3


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_a_stopped_workers_trial_ends_failed_and_the_next_worker_goes_on(
    pipeline, storage_of, stop: signal.Signals
) -> None:
    project, env = pipeline
    storage = storage_of("postgresql" if stop == signal.SIGKILL else "sqlite")
    worker = start_worker(tune_command(storage, 1, "-S", "tune.budget.epochs=200"), project, env)
    wait_until(training, storage)
    worker.send_signal(stop)
    output = worker.communicate(timeout=120)[0]
    if stop == signal.SIGINT:  # Ctrl-C: a clean stop with the summary so far
        assert worker.returncode == 130
        assert "interrupted" in output and "study shared: 1 trials" in output
    else:
        time.sleep(GRACE_PERIOD + 1)  # the dead worker's heartbeat is stale
    run(tune_command(storage, 1), project, env)
    first, second = trials(storage)
    assert first.state == FAIL
    assert second.state == COMPLETE
    if stop == signal.SIGKILL:  # failed by heartbeat, then retried with the same params
        assert second.params == first.params
        assert second.system_attrs["failed_trial"] == first.number


def test_a_postgres_restart_under_running_workers_loses_no_finished_trial(
    pipeline, postgres, storage_of
) -> None:
    project, env = pipeline
    storage = storage_of("postgresql")
    # Longer trials, so that the restart falls inside one; a grace period the restart fits in.
    slower = ["-S", "tune.budget.epochs=6 tune.grace_period=8"]
    workers = [start_worker(tune_command(storage, 3, *slower), project, env) for _ in range(2)]
    wait_until(lambda found: COMPLETE in {t.state for t in found} and training(found), storage)
    finished = {t.number: t.value for t in trials(storage) if t.state == COMPLETE}
    postgres.restart()  # connections cut at once, as in a crash
    for worker in workers:
        output, errors = worker.communicate(timeout=600)
        lines = errors.strip().splitlines()
        assert postgres.password not in output + errors
        # Either it went on to the end, or it stopped with one clear line.
        assert worker.returncode == 0 or (
            worker.returncode == 2 and lines[-1].startswith("error: tune: lost the Optuna storage")
        ), errors[-3000:]
    kept = {t.number: t.value for t in trials(storage) if t.state == COMPLETE}
    assert finished.items() <= kept.items()
    time.sleep(8 + 1)  # past the grace period: a trial left RUNNING by a stopped worker is stale
    run(tune_command(storage, 1, *slower), project, env)
    after = trials(storage)
    assert RUNNING not in {t.state for t in after}
    assert len([t for t in after if t.state == COMPLETE]) == len(kept) + 1
