"""The train stage: train on the index, keep the best epoch's weights, record it all in MLflow."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from depthseg.core.files import replaced_atomically, write_json
from depthseg.core.params import Params
from depthseg.core.paths import (
    CHECKPOINT_DIR,
    INDEX_FILE,
    MLFLOW_BACKLOG,
    MODEL_CARD,
    MODEL_WEIGHTS,
    TRAIN_HISTORY,
    TRAIN_METRICS,
)
from depthseg.data.indexing import fingerprint, read_index
from depthseg.engine.checkpoints import save_atomically
from depthseg.engine.distributed import process_group
from depthseg.engine.loop import Trainer
from depthseg.models.dsresnet import count_parameters
from depthseg.tracking import outage
from depthseg.tracking import service as tracking
from depthseg.tracking.callbacks import log_epoch, log_missed_epochs


def train(params: Params, params_file: Path) -> dict[str, Any] | None:
    """Train, keep the best epoch's weights, write metrics and history; all in one MLflow run.

    Under torchrun every process trains its share; rank 0 alone writes and records (the others
    return None).
    """
    table, archive_path = read_index(INDEX_FILE)
    with process_group(params.train.device) as group:
        trainer = Trainer(
            params, table, archive_path, CHECKPOINT_DIR, callbacks=[log_epoch], group=group
        )
        if not group.is_main:
            trainer.fit()
            return None
        return _train_and_record(trainer, params, params_file)


def _train_and_record(trainer: Trainer, params: Params, params_file: Path) -> dict[str, Any]:
    data_fingerprint = fingerprint(INDEX_FILE)
    tags = {"data_fingerprint": data_fingerprint, **tracking.dvc_experiment_tags()}
    with (
        outage.tolerating(MLFLOW_BACKLOG),
        tracking.start_run(params, run_id=trainer.extra.get("run_id"), tags=tags) as run_id,
    ):
        trainer.extra["run_id"] = run_id
        if missed := log_missed_epochs(trainer.history):
            print(f"train: logged epochs {missed} that the interrupted run had not recorded")
        tracking.log_artifact(params_file)
        started = time.perf_counter()
        history = trainer.fit()
        seconds = time.perf_counter() - started
        assert trainer.best is not None
        trainer.load_best()
        save_atomically(trainer.model.state_dict(), MODEL_WEIGHTS)
        card = {
            "width": params.model.width,
            "mirror_average": params.model.mirror_average,
            # The size the kept weights were trained and chosen at; evaluate uses it.
            "image_size": trainer.best.image_size,
            "best_epoch": trainer.best.epoch,
            "keep_epoch": params.train.keep_epoch,
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
            "mlflow_run_id": run_id,
        }
        if (peak := trainer.peak_memory_mb()) is not None:
            metrics["peak_device_memory_mb"] = round(peak)
        write_json(TRAIN_METRICS, metrics)
        with replaced_atomically(TRAIN_HISTORY) as partial:
            pd.DataFrame([{"epoch": r.epoch, **r.metrics()} for r in history]).to_csv(
                partial, index=False
            )
        tracking.log_metrics({f"best_{k}": v for k, v in trainer.best.metrics().items()})
        tracking.log_metrics({"model_parameters": metrics["model_parameters"]})
        tracking.log_artifact(MODEL_WEIGHTS)
        tracking.log_artifact(MODEL_CARD)
    return metrics
