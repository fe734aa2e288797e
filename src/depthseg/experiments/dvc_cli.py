"""DVC experiments through the ``dvc`` command (never imported: DVC drives our stages, and we
drive DVC only as a user would): queue one, run the queue, read their params and metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pandas as pd
import yaml

from depthseg.core.errors import DepthsegError
from depthseg.core.paths import EVALUATE_METRICS, TRAIN_METRICS


class ExperimentError(DepthsegError, RuntimeError):
    """A dvc command failed; the message has its own last lines."""


def _dvc(*arguments: str) -> str:
    if shutil.which("dvc") is None:
        raise ExperimentError("`dvc` is not on PATH: activate the project's virtual environment")
    result = subprocess.run(["dvc", *arguments], capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise ExperimentError(f"`dvc {' '.join(arguments)}` failed:\n{tail}")
    return result.stdout


def set_arguments(overrides: dict[str, Any]) -> list[str]:
    """``-S key=value`` for each override, values in YAML flow style as DVC parses them."""
    arguments: list[str] = []
    for key, value in overrides.items():
        rendered = yaml.safe_dump(value, default_flow_style=True).splitlines()[0]
        arguments += ["-S", f"{key}={rendered}"]
    return arguments


def queue(name: str, overrides: dict[str, Any]) -> None:
    """Queue the experiment ``name``: the workspace with ``overrides`` applied."""
    _dvc("exp", "run", "--queue", "--name", name, *set_arguments(overrides))


def run_queue(names: list[str], jobs: int = 1) -> None:
    """Run every queued experiment (in temporary copies of the repository); wait for them, and
    raise if one of ``names`` failed (`dvc exp run --run-all` itself exits 0 then)."""
    _dvc("exp", "run", "--run-all", "--jobs", str(jobs))
    failed = failed_tasks(names)
    if failed:
        raise ExperimentError(
            f"DVC experiments {', '.join(failed)} failed; `dvc queue logs {failed[0]}` shows why"
        )


def failed_tasks(names: list[str]) -> list[str]:
    """Which of ``names`` `dvc queue status` lists as failed (columns: task, name, ..., status)."""
    rows = [line.split() for line in _dvc("queue", "status").splitlines()]
    return [row[1] for row in rows if len(row) >= 3 and row[1] in names and row[-1] == "Failed"]


def _revisions(shown: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every commit and experiment of ``dvc exp show --json``."""
    for entry in shown:
        yield entry
        for experiment in entry.get("experiments") or []:
            yield from experiment.get("revs") or []


def _file_data(data: dict[str, Any], kind: str, path: str) -> dict[str, Any]:
    return ((data.get(kind) or {}).get(path) or {}).get("data") or {}


def experiment_table(names: list[str], params: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per experiment of ``names``: the dotted ``params`` and the evaluate ``metrics``
    (plus the training time), as ``dvc exp show`` records them."""
    shown = json.loads(_dvc("exp", "show", "--json"))
    rows = []
    for revision in _revisions(shown):
        if revision.get("name") not in names:
            continue
        data = revision.get("data") or {}
        values = _file_data(data, "params", "params.yaml")
        row: dict[str, Any] = {"experiment": revision["name"]}
        for key in params:
            node: Any = values
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            row[key] = node
        evaluation = _file_data(data, "metrics", str(EVALUATE_METRICS))
        row |= {name: evaluation.get(name) for name in metrics}
        row["train_seconds"] = _file_data(data, "metrics", str(TRAIN_METRICS)).get("train_seconds")
        rows.append(row)
    return pd.DataFrame(rows).drop_duplicates("experiment")
