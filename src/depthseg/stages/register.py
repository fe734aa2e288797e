"""The register stage: the evaluated model, logged as the image model, becomes a version in
MLflow's model registry."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from depthseg.core.errors import DepthsegError
from depthseg.core.files import write_json
from depthseg.core.params import Params
from depthseg.core.paths import (
    EVALUATE_METRICS,
    INDEX_FILE,
    MODEL_CARD,
    MODEL_WEIGHTS,
    REGISTER_DECISION,
)
from depthseg.data.archive import MemberReader
from depthseg.data.indexing import read_index
from depthseg.data.scene_images import range_columns, read_image
from depthseg.serving.pyfunc import input_example
from depthseg.tracking.registry import Decision, ModelFiles
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
    table, archive_path = read_index(INDEX_FILE)
    model = ModelFiles(MODEL_WEIGHTS, MODEL_CARD, _example_scene(table, archive_path))
    decision = register_version(params, card["run_id"], metrics, model)
    write_json(REGISTER_DECISION, asdict(decision))
    return decision


def _example_scene(table: pd.DataFrame, archive_path: Path) -> pd.DataFrame:
    """A real scene, the first of validation (else of training), as the model's input example."""
    validation = table[table["split"] == "val"]
    first = (validation if len(validation) else table).sort_values("scene").iloc[0]
    reader = MemberReader(archive_path)
    images = {
        kind: read_image(reader, first[range_columns(kind)].to_numpy(np.int64), first[kind])
        for kind in ("bg", "bg_fg")
    }
    return input_example(images["bg"], images["bg_fg"])


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DepthsegError(f"{path} is missing: run `dvc repro evaluate` first")
    return json.loads(path.read_text())
