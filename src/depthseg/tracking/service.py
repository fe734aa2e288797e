"""MLflow behind one small service: where runs go and what a run records.

The store is ``tracking.tracking_uri`` if set, else ``MLFLOW_TRACKING_URI``, else MLflow's own
default, ``sqlite:///mlflow.db`` in the working directory (the repository root under DVC), so a
plain ``mlflow ui`` there shows the runs.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import requests
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request

from depthseg.core.errors import DepthsegError
from depthseg.core.params import LimitsParams, Params, TrackingParams, flatten, predicts_depth
from depthseg.core.secrets import redact, redacted_values, without_credentials
from depthseg.engine.checkpoints import ModelCard
from depthseg.serving import pyfunc
from depthseg.tracking import outage

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
MODEL_ARTIFACT = "model"
#: The depthseg package, shipped with the logged model as its code.
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: What the logged model needs to be loaded elsewhere; pinned as in requirements.txt.
_MODEL_REQUIREMENTS = [
    f"{name}=={version(name).split('+')[0]}"
    for name in (
        "mlflow", "torch", "numpy", "pandas", "pyarrow", "pillow", "opencv-python-headless",
        "albumentations", "matplotlib", "pydantic", "PyYAML", "tqdm",
    )
]  # fmt: skip


#: `mlflow run` opens a run and names its experiment for the process it starts (MLflow consumes
#: MLFLOW_RUN_ID when the run is first used, so it is read once, here).
_LAUNCHED_BY_MLFLOW_RUN = "MLFLOW_RUN_ID" in os.environ


class TrackingError(DepthsegError, RuntimeError):
    """The tracking store cannot be used; the message names it and says what to do."""


def _dvc_root() -> Path | None:
    """The repository DVC runs the stage for: a queued experiment runs in a temporary copy,
    whose own mlflow.db and mlruns/ would be thrown away with it."""
    root = os.environ.get("DVC_ROOT")
    return Path(root).resolve() if root else None


def tracking_uri(params: TrackingParams) -> str:
    """``tracking.tracking_uri``, else MLFLOW_TRACKING_URI, else mlflow.db at the repository root
    (the DVC root under DVC, else the working directory)."""
    if params.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):
        return params.tracking_uri or os.environ["MLFLOW_TRACKING_URI"]
    root = _dvc_root()
    return f"sqlite:///{root / 'mlflow.db'}" if root else DEFAULT_TRACKING_URI


def _credentials_to_environment(uri: str) -> str:
    """``uri`` without its user and password, which go to MLflow's own variables instead
    (MLFLOW_TRACKING_USERNAME/_PASSWORD, unless set): MLflow prints its tracking URI in run
    links and messages, so a password in it would be shown."""
    if not is_server(uri):
        return uri
    clean, user, password = without_credentials(uri)
    if user is not None:
        os.environ.setdefault("MLFLOW_TRACKING_USERNAME", user)
    if password is not None:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", password)
    if os.environ.get("MLFLOW_TRACKING_URI") == uri:
        os.environ["MLFLOW_TRACKING_URI"] = clean
    return clean


def dvc_experiment_tags() -> dict[str, str]:
    """The DVC experiment this stage runs for (``dvc exp run`` names it in the environment)."""
    names = {"DVC_EXP_NAME": "dvc_experiment", "DVC_EXP_BASELINE_REV": "dvc_baseline_rev"}
    return {tag: os.environ[variable] for variable, tag in names.items() if variable in os.environ}


def is_server(uri: str) -> bool:
    """A tracking server, which has its own artifact store, rather than a database or folder."""
    return uri.startswith(("http://", "https://"))


def check_server(uri: str) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when a server is down. The check
    goes through MLflow's own HTTP client, so it sends what MLflow would (MLFLOW_TRACKING_TOKEN,
    _USERNAME/_PASSWORD, MLFLOW_TRACKING_INSECURE_TLS, _SERVER_CERT_PATH, _CLIENT_CERT_PATH)."""
    try:
        response = http_request(
            get_default_host_creds(uri), "/health", "GET", max_retries=0, timeout=10
        )
        response.raise_for_status()
    except (requests.RequestException, mlflow.exceptions.MlflowException) as error:
        raise TrackingError(
            f"the MLflow tracking server {uri} is unreachable or refused us "
            f"({type(error).__name__}: {redact(str(error))[:200]}); start it (`mlflow server "
            "...`), check its credentials (MLFLOW_TRACKING_USERNAME/PASSWORD or _TOKEN), or point "
            "MLFLOW_TRACKING_URI / tracking.tracking_uri at another store, or unset both to use "
            f"{DEFAULT_TRACKING_URI}"
        ) from None


def connect(params: TrackingParams) -> str | None:
    """Point MLflow at the store and experiment of ``params``; return the experiment id."""
    uri = _credentials_to_environment(tracking_uri(params))
    if is_server(uri):
        check_server(uri)
    mlflow.set_tracking_uri(uri)
    if _LAUNCHED_BY_MLFLOW_RUN:
        return None  # MLflow takes the run and experiment that `mlflow run` chose
    try:
        root = _dvc_root()
        if root and not is_server(uri) and not _experiment_exists(params):
            # A local store keeps artifacts in mlruns/ of the working directory: the
            # repository's, not that of a queued experiment's temporary copy. A server keeps
            # them in its own artifact store.
            mlflow.create_experiment(params.experiment, (root / "mlruns").as_uri())
        return mlflow.set_experiment(params.experiment).experiment_id
    except Exception as error:  # any store failure: bad URI, locked or corrupt database
        raise TrackingError(
            redact(f"cannot use the MLflow tracking store {uri}: {type(error).__name__}: {error}")
        ) from None


def _experiment_exists(params: TrackingParams) -> bool:
    return mlflow.get_experiment_by_name(params.experiment) is not None


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


class TrackedRun:
    """What one MLflow run records. With a ``backlog``, a store that stops answering costs no
    call: what is not logged is kept there for ``python src/sync_mlflow.py``."""

    def __init__(self, run_id: str, backlog: outage.Backlog | None = None) -> None:
        self.id = run_id
        self.backlog = backlog
        if backlog is not None:
            backlog.run_id = run_id

    def _call(
        self, kind: str, payload: Callable[[], dict[str, Any]], action: Callable[[], Any]
    ) -> None:
        if self.backlog is None:
            action()
        else:
            self.backlog.guarded(kind, payload, action)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = {key: float(value) for key, value in metrics.items()}
        stamp = int(time.time() * 1000)  # kept, so that a replay logs the very same points
        self._call(
            "metrics",
            lambda: {"metrics": values, "step": step, "timestamp": stamp},
            lambda: mlflow.log_metrics(values, step=step, timestamp=stamp, run_id=self.id),
        )

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        self._call(
            "image",  # a payload is only asked for where there is a backlog
            lambda: {"path": self.backlog.keep_image(image, key, step), "folder": "images"},  # type: ignore[union-attr]
            # Asynchronous: MLflow's artifact queue writes the PNGs while training goes on.
            lambda: mlflow.log_image(image, key=key, step=step, synchronous=False),
        )

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self._call(
            "artifact",
            lambda: {"path": str(path.resolve()), "folder": folder},
            lambda: mlflow.log_artifact(str(path), artifact_path=folder, run_id=self.id),
        )

    def set_tags(self, tags: dict[str, str]) -> None:
        tags = redacted_values(tags)
        self._call("tags", lambda: {"tags": tags}, lambda: mlflow.set_tags(tags))

    def end(self, status: str) -> None:
        self._call("end", lambda: {"status": status}, lambda: mlflow.end_run(status))

    def log_params(self, params: dict[str, Any]) -> None:
        mlflow.log_params(redacted_values(params), run_id=self.id)

    def log_series(self, series: dict[str, list[float]]) -> None:
        """Whole metric histories (value i at step i + 1) in one call to the store."""
        timestamp = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), timestamp, step)
            for key, values in series.items()
            for step, value in enumerate(values, start=1)
        ]
        MlflowClient().log_batch(self.id, metrics=metrics)

    def logged_steps(self, key: str) -> set[int]:
        """The steps at which this run has metric ``key``."""
        return {point.step for point in MlflowClient().get_metric_history(self.id, key)}


@contextmanager
def start_run(
    params: Params,
    *,
    run_id: str | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    nested: bool = False,
    backlog: Path | None = None,
) -> Iterator[TrackedRun]:
    """Open a run that records every param, or reopen the run ``run_id``; yield it. With a
    ``backlog`` file, the run tolerates a store that stops answering (``tracking/outage.py``)."""
    experiment_id = connect(params.tracking)
    try:
        run = mlflow.start_run(
            run_id=run_id,
            experiment_id=None if run_id else experiment_id,
            run_name=run_name,
            nested=nested,
            tags=None if run_id else redacted_values({"git_commit": git_commit(), **(tags or {})}),
        )
    except mlflow.exceptions.MlflowException as error:
        if run_id is None:
            raise
        raise TrackingError(
            redact(
                f"MLflow run {run_id} is not in the store {mlflow.get_tracking_uri()} "
                f"({error.message}): train again against this store (`dvc repro train`)"
            )
        ) from None
    tracked = TrackedRun(run.info.run_id, outage.Backlog(backlog) if backlog else None)
    status = "FINISHED"
    try:
        if run_id is None:
            tracked.log_params(flatten(params))
        yield tracked
    except BaseException as error:
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        raise
    finally:
        tracked.end(status)


def log_model(weights: Path, card: Path, input_example: pd.DataFrame, limits: LimitsParams) -> str:
    """Log the image model (see ``serving.pyfunc``) to the active run: its code, the weights as
    a state dict and the card, with a signature, an input example of a real scene and the
    serving limits as its ``model_config``; return its ``models:/`` URI. The signature has a
    depth column only if the card's network predicts depth."""
    network = ModelCard.model_validate_json(card.read_bytes()).model
    info = mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT,
        python_model=str(pyfunc.MODEL_CODE),
        artifacts={pyfunc.WEIGHTS_ARTIFACT: str(weights), pyfunc.CARD_ARTIFACT: str(card)},
        code_paths=[str(_PACKAGE_DIR)],
        signature=pyfunc.signature(predicts_depth(network)),
        input_example=input_example,
        pip_requirements=_MODEL_REQUIREMENTS,
        model_config=pyfunc.model_config(limits),
    )
    return info.model_uri
