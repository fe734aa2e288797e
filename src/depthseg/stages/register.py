"""The register stage: the evaluated model becomes a version in MLflow's model registry."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from depthseg.core.errors import DepthsegError
from depthseg.core.files import write_json
from depthseg.core.params import Params
from depthseg.core.paths import EVALUATE_METRICS, MODEL_CARD, REGISTER_DECISION
from depthseg.tracking.registry import Decision
from depthseg.tracking.registry import register as register_version


def register(params: Params) -> Decision:
    """Register the model that evaluate measured; record what was decided about `champion`."""
    card, metrics = (_read(path) for path in (MODEL_CARD, EVALUATE_METRICS))
    if params.evaluate.split != "test":
        raise DepthsegError(
            f"evaluate.split is '{params.evaluate.split}': the registry compares models on "
            "their test metrics; set evaluate.split to test"
        )
    if metrics.get("mlflow_run_id") != card["run_id"]:
        raise DepthsegError(
            f"{EVALUATE_METRICS} measured another model than {MODEL_CARD}: run `dvc repro`"
        )
    decision = register_version(params, card["run_id"], metrics)
    write_json(REGISTER_DECISION, asdict(decision))
    return decision


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DepthsegError(f"{path} is missing: run `dvc repro evaluate` first")
    return json.loads(path.read_text())
