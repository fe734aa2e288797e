"""A tracking store that stops answering during a training must not cost the training.

Inside ``tolerating(path)`` every MLflow call of the service goes through ``guarded``: the first
failure (after MLflow's own brief retries) is reported once, later calls are not even tried, and
each call not made is appended to a backlog file (JSON lines; images as PNG beside it). The stage
then finishes with its outputs. ``replay(path)`` logs the backlog into the run once the store
answers again (``python src/sync_mlflow.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.tracking import MlflowClient
from PIL import Image

#: MLflow's defaults retry for minutes; a store that is down should cost seconds.
BRIEF_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


class Backlog:
    """The calls not made, in order, for the run ``run_id``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.run_id: str | None = None
        self.failure: str | None = None

    def record(self, kind: str, payload: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"run_id": self.run_id, "kind": kind, **payload})
        with open(self.path, "a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())


_backlog: Backlog | None = None


def keep_image(image: np.ndarray, key: str, step: int) -> str:
    """Save an image that could not be logged beside the backlog; return its path."""
    assert _backlog is not None, "keep_image is for calls guarded while tolerating"
    path = _backlog.path.with_name(f"{_backlog.path.stem}-{key}-{step}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return str(path)


@contextmanager
def tolerating(path: Path) -> Iterator[Backlog]:
    """Within this block, MLflow failures are recorded in ``path`` instead of raised."""
    global _backlog
    for variable, value in BRIEF_RETRIES.items():
        os.environ.setdefault(variable, value)
    _backlog = Backlog(path)
    try:
        yield _backlog
    finally:
        _backlog = None


def note_run(run_id: str) -> None:
    """The run that backlog entries belong to."""
    if _backlog is not None:
        _backlog.run_id = run_id


def guarded(kind: str, payload: Callable[[], dict[str, Any]], action: Callable[[], Any]) -> None:
    """Run ``action`` (an MLflow call); inside ``tolerating``, a failure or an earlier one
    records ``payload()`` in the backlog instead."""
    backlog = _backlog
    if backlog is None:
        action()
        return
    if backlog.failure is None:
        try:
            action()
            return
        except Exception as error:  # any failure of the store: HTTP, database, timeouts
            backlog.failure = f"{type(error).__name__}: {str(error)[:200]}"
            print(
                f"warning: the MLflow store stopped answering ({backlog.failure}); training goes "
                f"on without it, keeping what is not logged in {backlog.path}; once the store "
                "is back, `python src/sync_mlflow.py` logs it"
            )
    backlog.record(kind, payload())


def replay(path: Path) -> int:
    """Log every call of the backlog at ``path`` into its run; remove it; return the count."""
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    client = MlflowClient()
    for entry in entries:
        run_id, kind = entry["run_id"], entry["kind"]
        if kind == "metrics":
            for key, value in entry["metrics"].items():
                client.log_metric(run_id, key, value, step=entry["step"] or 0)
        elif kind == "tags":
            for key, value in entry["tags"].items():
                client.set_tag(run_id, key, value)
        elif kind in ("artifact", "image"):
            if Path(entry["path"]).is_file():
                client.log_artifact(run_id, entry["path"], entry.get("folder"))
        elif kind == "end":
            client.set_terminated(run_id, entry["status"])
        else:  # "model": the logged model needs the trained module; its weights are artifacts
            print(f"sync: the MLflow model of run {run_id} is not logged again (model.pt is)")
    for image in path.parent.glob(f"{path.stem}-*.png"):
        image.unlink()
    path.unlink()
    return len(entries)
