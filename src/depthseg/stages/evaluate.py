"""The evaluate stage: metrics of the trained model on a split, per image too, and predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from depthseg.core.errors import DepthsegError
from depthseg.core.files import replaced_atomically, write_json
from depthseg.core.params import Params, predicts_depth
from depthseg.core.paths import (
    EVALUATE_METRICS,
    EVALUATE_PER_IMAGE,
    EVALUATE_PREDICTIONS,
    INDEX_FILE,
    MODEL_CARD,
    MODEL_WEIGHTS,
)
from depthseg.data.dataset import SceneDataset, collate_scenes
from depthseg.data.decoding import opencv_threads_for_loader
from depthseg.data.indexing import read_index, scene_contents_hash
from depthseg.engine.checkpoints import load_trained
from depthseg.engine.compute import ComputeSetup
from depthseg.engine.evaluation import evaluate_split
from depthseg.engine.preview import evenly_spaced, predict_scenes
from depthseg.engine.recipe import build_loss
from depthseg.tracking import service as tracking


def evaluate(params: Params) -> dict[str, Any]:
    """Metrics of the trained model on a split, per image too, and prediction images."""
    setup = ComputeSetup.from_params(params.train)
    model, card = load_trained(MODEL_WEIGHTS, MODEL_CARD)
    model = model.to(setup.device, memory_format=setup.memory_format)
    config = params.evaluate
    table, archive_path = read_index(INDEX_FILE)
    rows = table[table["split"] == config.split].sort_values("scene").reset_index(drop=True)
    if rows.empty:
        raise DepthsegError(
            f"the index has no '{config.split}' scenes: set index.split.{config.split} above 0 "
            "or choose another evaluate.split"
        )
    size = config.image_size or card["image_size"]
    skip_bad = params.train.on_bad_image == "skip"
    dataset = SceneDataset(rows, archive_path, size, skip_bad=skip_bad)
    opencv_threads_for_loader(params.train.workers)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        num_workers=params.train.workers,
        pin_memory=setup.device.type == "cuda",
        collate_fn=collate_scenes,
    )
    with tracking.start_run(params, run_id=card["run_id"]) as run:
        result = evaluate_split(
            model,
            loader,
            build_loss(params.loss),
            setup,
            per_image=True,
            predicts_depth=predicts_depth(card["model"]),
        )
        metrics = {
            **result.metrics,
            "loss": result.loss,
            "scenes": len(rows) - result.skipped,
            "image_size": size,
            "skipped_scenes": result.skipped,
            "mlflow_run_id": card["run_id"],
            "evaluated_scenes_hash": scene_contents_hash(rows),
        }
        write_json(EVALUATE_METRICS, metrics)
        scores = pd.DataFrame(result.per_image).set_index("index")
        per_image = rows[["scene", "bg_id", "fg_id"]].join(scores, how="inner")
        with replaced_atomically(EVALUATE_PER_IMAGE) as partial:
            per_image.to_csv(partial, index=False, float_format="%.6g")
        _write_predictions(model, dataset, rows, config.prediction_images, setup)
        run.log_metrics({f"{config.split}_{k}": v for k, v in result.metrics.items()})
        run.log_artifact(EVALUATE_METRICS, "evaluate")
        run.log_artifact(EVALUATE_PER_IMAGE, "evaluate")
        if EVALUATE_PREDICTIONS.is_dir():
            for image in sorted(EVALUATE_PREDICTIONS.iterdir()):
                run.log_artifact(image, "evaluate/predictions")
    return metrics


def _write_predictions(
    model: nn.Module, dataset: SceneDataset, rows: pd.DataFrame, wanted: int, setup: ComputeSetup
) -> None:
    """One PNG per fixed test scene; the new set replaces the previous one only when complete."""
    with replaced_atomically(EVALUATE_PREDICTIONS) as folder:
        folder.mkdir()
        for index in evenly_spaced(len(rows), wanted):
            grid = predict_scenes(model, dataset, np.array([index]), dataset.image_size, setup)
            if grid is not None:
                Image.fromarray(grid).save(folder / f"{rows['scene'][index]}.png")
