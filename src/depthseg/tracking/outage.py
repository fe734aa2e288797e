"""A tracking store that stops answering during a training must not cost the training.

A run opened with a ``Backlog`` (``service.start_run(..., backlog=path)``) sends every call
through ``Backlog.guarded``: the first failure (after MLflow's own brief retries) is reported
once, later calls are not even tried, and each call not made is appended to the backlog file
(JSON lines; images as PNG beside it). The stage
then finishes with its outputs. ``replay(path)`` logs the backlog into the run once the store
answers again (``python src/sync_mlflow.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient
from PIL import Image

from depthseg.core.errors import DepthsegError
from depthseg.core.files import replaced_atomically, write_json
from depthseg.core.secrets import redact

#: MLflow's defaults retry for minutes; a store that is down should cost seconds.
BRIEF_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


class Backlog:
    """The calls of the run ``run_id`` not made since the store stopped answering, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.run_id: str | None = None
        self.failure: str | None = None
        for variable, value in BRIEF_RETRIES.items():
            os.environ.setdefault(variable, value)

    def record(self, kind: str, payload: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"run_id": self.run_id, "kind": kind, **payload})
        with open(self.path, "a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def keep_image(self, image: np.ndarray, key: str, step: int) -> str:
        """Save an image that could not be logged beside the backlog (whole or not at all);
        return its path."""
        path = self.path.with_name(f"{self.path.stem}-{key}-{step}.png")
        with replaced_atomically(path) as partial:
            Image.fromarray(image).save(partial, format="PNG")
        return str(path)

    def guarded(
        self, kind: str, payload: Callable[[], dict[str, Any]], action: Callable[[], Any]
    ) -> None:
        """Run ``action`` (an MLflow call); after its failure, or an earlier one, record
        ``payload()`` instead."""
        if self.failure is None:
            try:
                action()
                return
            except Exception as error:  # any failure of the store: HTTP, database, timeouts
                self.failure = redact(f"{type(error).__name__}: {str(error)[:200]}")
                print(
                    f"warning: the MLflow store stopped answering ({self.failure}); training "
                    f"goes on without it, keeping what is not logged in {self.path}; once the "
                    "store is back, `python src/sync_mlflow.py` logs it"
                )
        self.record(kind, payload())


class BacklogError(DepthsegError, ValueError):
    """The backlog cannot be read; the message names the file and line."""


def _entries(path: Path) -> list[dict[str, Any]]:
    """The backlog's entries; a last line cut short (a crash while it was written) is skipped
    with a warning, any other broken line stops the replay, naming it."""
    lines = path.read_bytes().split(b"\n")
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            if any(rest.strip() for rest in lines[number:]):
                raise BacklogError(
                    f"{path} line {number} is not a backlog entry ({line[:80]!r}); remove that "
                    "line to log the rest"
                ) from None
            print(f"sync: warning: {path} line {number} was cut short while written; skipped")
    return entries


def _log(client: MlflowClient, entry: dict[str, Any]) -> None:
    """One entry, in one call to the store: logging it twice records it once."""
    run_id, kind = entry["run_id"], entry["kind"]
    if kind == "metrics":
        stamp, step = entry["timestamp"], entry["step"] or 0
        metrics = [Metric(key, value, stamp, step) for key, value in entry["metrics"].items()]
        client.log_batch(run_id, metrics=metrics)
    elif kind == "tags":
        client.log_batch(run_id, tags=[RunTag(key, value) for key, value in entry["tags"].items()])
    elif kind in ("artifact", "image"):
        if Path(entry["path"]).is_file():
            client.log_artifact(run_id, entry["path"], entry.get("folder"))
    elif kind == "end":
        client.set_terminated(run_id, entry["status"])


def replay(path: Path) -> int:
    """Log every call of the backlog at ``path`` into its run; remove it; return the count.

    Each entry logged is marked (``*.done.json``), so a replay that fails half way continues
    after the last one on the next try instead of logging the first ones again.
    """
    entries = _entries(path)
    marker = path.with_name(f"{path.stem}.done.json")
    done = json.loads(marker.read_text())["entries"] if marker.is_file() else 0
    client = MlflowClient()
    for number, entry in enumerate(entries[done:], start=done + 1):
        _log(client, entry)
        write_json(marker, {"entries": number})
    for image in path.parent.glob(f"{path.stem}-*.png"):
        image.unlink()
    path.unlink()
    marker.unlink(missing_ok=True)
    return len(entries) - done
