"""The train and evaluate stages: the library's parts put together, MLflow included."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, default_collate

from depthseg.tracking import service as tracking
from depthseg.core.cli import write_json
from depthseg.core.params import (
    CHECKPOINT_DIR,
    EVALUATE_METRICS,
    EVALUATE_PER_IMAGE,
    EVALUATE_PREDICTIONS,
    INDEX_FILE,
    MODEL_CARD,
    MODEL_WEIGHTS,
    TRAIN_HISTORY,
    TRAIN_METRICS,
    Params,
)
from depthseg.data.dataset import SceneDataset
from depthseg.core.errors import DepthsegError
from depthseg.core.files import replaced_atomically
from depthseg.data.indexing import fingerprint, read_index
from depthseg.objectives.losses import JointLoss
from depthseg.models.dsresnet import DSResNet, count_parameters
from depthseg.engine.loop import (
    ComputeSetup,
    EpochReport,
    Trainer,
    evaluate_split,
    loss_weights,
    save_atomically,
)
from depthseg.engine.preview import prediction_grid


def _evenly_spaced(count: int, wanted: int) -> np.ndarray:
    """``wanted`` fixed indices spread over ``count`` items: the scenes shown in grids."""
    return np.unique(np.linspace(0, count - 1, min(wanted, count)).round().astype(int))


def _predict_scenes(
    model: torch.nn.Module, dataset: SceneDataset, indices: np.ndarray, setup: ComputeSetup
) -> np.ndarray:
    batch = default_collate([dataset[int(i)] for i in indices])
    bg, bg_fg, depth, mask = setup.inputs(batch)
    depth_pred, mask_prob = setup.predict(model, bg, bg_fg)
    return prediction_grid(bg_fg, mask, mask_prob, depth, depth_pred)


def log_epoch(trainer: Trainer, report: EpochReport) -> None:
    """Per-epoch MLflow record: metrics, and predictions on fixed validation scenes."""
    tracking.log_metrics(report.metrics(), step=report.epoch)
    indices = _evenly_spaced(len(trainer.val_set), trainer.config.preview_images)
    if len(indices):
        grid = _predict_scenes(trainer.model, trainer.val_set, indices, trainer.setup)
        tracking.log_image(grid, key="val_predictions", step=report.epoch)


def train(params: Params, params_file: Path) -> dict[str, Any]:
    """Train, keep the best epoch's weights, write metrics and history; all in one MLflow run."""
    table, archive_path = read_index(INDEX_FILE)
    trainer = Trainer(params, table, archive_path, CHECKPOINT_DIR, callbacks=[log_epoch])
    data_fingerprint = fingerprint(INDEX_FILE)
    with tracking.start_run(
        params, run_id=trainer.extra.get("run_id"), tags={"data_fingerprint": data_fingerprint}
    ) as run_id:
        trainer.extra["run_id"] = run_id
        tracking.log_artifact(params_file)
        started = time.perf_counter()
        history = trainer.fit()
        seconds = time.perf_counter() - started
        assert trainer.best is not None
        trainer.load_best()
        save_atomically(trainer.model.state_dict(), MODEL_WEIGHTS)
        card = {
            "width": params.model.width,
            "image_size": history[-1].image_size,
            "best_epoch": trainer.best.epoch,
            "run_id": run_id,
            "data_fingerprint": data_fingerprint,
        }
        write_json(MODEL_CARD, card)
        metrics = {
            "model_parameters": count_parameters(trainer.model),
            "best_epoch": trainer.best.epoch,
            "best": trainer.best.metrics(),
            "final": history[-1].metrics(),
            "train_seconds": round(seconds, 1),
        }
        write_json(TRAIN_METRICS, metrics)
        with replaced_atomically(TRAIN_HISTORY) as partial:
            pd.DataFrame([{"epoch": r.epoch, **r.metrics()} for r in history]).to_csv(
                partial, index=False
            )
        tracking.log_metrics({f"best_{k}": v for k, v in trainer.best.metrics().items()})
        tracking.log_metrics({"model_parameters": metrics["model_parameters"]})
        tracking.log_artifact(MODEL_WEIGHTS)
        tracking.log_artifact(MODEL_CARD)
        tracking.log_model(trainer.model, card["image_size"])
    return metrics


def load_trained_model(setup: ComputeSetup) -> tuple[DSResNet, dict[str, Any]]:
    if not (MODEL_CARD.is_file() and MODEL_WEIGHTS.is_file()):
        raise DepthsegError(f"{MODEL_WEIGHTS} or {MODEL_CARD} is missing: run `dvc repro train`")
    card = json.loads(MODEL_CARD.read_text())
    model = DSResNet(card["width"])
    model.load_state_dict(torch.load(MODEL_WEIGHTS, map_location="cpu", weights_only=True))
    return model.to(setup.device, memory_format=setup.memory_format).eval(), card


def evaluate(params: Params) -> dict[str, float]:
    """Metrics of the trained model on a split, per image too, and prediction images."""
    setup = ComputeSetup.from_params(params.train)
    model, card = load_trained_model(setup)
    config = params.evaluate
    table, archive_path = read_index(INDEX_FILE)
    rows = table[table["split"] == config.split].sort_values("scene").reset_index(drop=True)
    if rows.empty:
        raise DepthsegError(
            f"the index has no '{config.split}' scenes: set index.split.{config.split} above 0 "
            "or choose another evaluate.split"
        )
    size = config.image_size or card["image_size"]
    dataset = SceneDataset(rows, archive_path, size)
    loader = DataLoader(dataset, batch_size=config.batch_size, num_workers=params.train.workers)
    with tracking.start_run(params, run_id=card["run_id"]):
        result = evaluate_split(model, loader, JointLoss(loss_weights(params.loss)), setup, True)
        metrics = {
            **result.metrics,
            "loss": result.loss,
            "scenes": len(rows),
            "image_size": size,
        }
        write_json(EVALUATE_METRICS, metrics)
        per_image = pd.concat(
            [rows[["scene", "bg_id", "fg_id"]], pd.DataFrame(result.per_image)], axis=1
        )
        with replaced_atomically(EVALUATE_PER_IMAGE) as partial:
            per_image.to_csv(partial, index=False, float_format="%.6g")
        _write_predictions(model, dataset, rows, config.prediction_images, setup)
        tracking.log_metrics({f"{config.split}_{k}": v for k, v in result.metrics.items()})
        tracking.log_artifact(EVALUATE_METRICS, "evaluate")
        tracking.log_artifact(EVALUATE_PER_IMAGE, "evaluate")
        if EVALUATE_PREDICTIONS.is_dir():
            for image in sorted(EVALUATE_PREDICTIONS.iterdir()):
                tracking.log_artifact(image, "evaluate/predictions")
    return metrics


def _write_predictions(
    model: DSResNet, dataset: SceneDataset, rows: pd.DataFrame, wanted: int, setup: ComputeSetup
) -> None:
    """One PNG per fixed test scene, replacing the previous set."""
    shutil.rmtree(EVALUATE_PREDICTIONS, ignore_errors=True)
    EVALUATE_PREDICTIONS.mkdir(parents=True)
    for index in _evenly_spaced(len(rows), wanted):
        grid = _predict_scenes(model, dataset, np.array([index]), setup)
        Image.fromarray(grid).save(EVALUATE_PREDICTIONS / f"{rows['scene'][index]}.png")
