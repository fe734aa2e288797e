"""The train stage: train on the index, keep the best epoch's weights, record it all in MLflow."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from depthseg.core.files import replaced_atomically, write_json
from depthseg.core.params import Params, model_outputs
from depthseg.core.paths import (
    CHECKPOINT_DIR,
    INDEX_FILE,
    MLFLOW_BACKLOG,
    MLFLOW_RUN_ID,
    MODEL_CARD,
    MODEL_WEIGHTS,
    TRAIN_HISTORY,
    TRAIN_METRICS,
)
from depthseg.data.indexing import index_file_hash, read_index
from depthseg.engine.assembly import build_run
from depthseg.engine.checkpoints import save_atomically
from depthseg.engine.distributed import process_group
from depthseg.engine.loop import Trainer
from depthseg.models.dsresnet import count_parameters
from depthseg.tracking import service as tracking
from depthseg.tracking.callbacks import epoch_logger, log_missed_epochs


def train(params: Params, params_file: Path) -> dict[str, Any] | None:
    """Train, keep the best epoch's weights, write metrics and history; all in one MLflow run.

    Under torchrun every process trains its share; rank 0 alone writes and records (the others
    return None).
    """
    table, archive_path = read_index(INDEX_FILE)
    with process_group(params.train.device) as group:
        trainer = Trainer(build_run(params, table, archive_path, CHECKPOINT_DIR, group=group))
        if not group.is_main:
            trainer.fit()
            return None
        return _train_and_record(trainer, params, params_file)


def _resumed_run_id(trainer: Trainer) -> str | None:
    """The MLflow run to continue: the one of the checkpoint the trainer resumes, if any."""
    if trainer.first_epoch == 1 or not MLFLOW_RUN_ID.is_file():
        return None
    return MLFLOW_RUN_ID.read_text().strip() or None


def _train_and_record(trainer: Trainer, params: Params, params_file: Path) -> dict[str, Any]:
    index_hash = index_file_hash(INDEX_FILE)
    tags = {"index_hash": index_hash, **tracking.dvc_experiment_tags()}
    resumed = _resumed_run_id(trainer)
    with tracking.start_run(params, run_id=resumed, tags=tags, backlog=MLFLOW_BACKLOG) as run:
        run_id = run.id
        with replaced_atomically(MLFLOW_RUN_ID) as partial:
            partial.write_text(run_id + "\n")
        if missed := log_missed_epochs(run, trainer.history):
            print(f"train: logged epochs {missed} that the interrupted run had not recorded")
        trainer.callbacks.append(epoch_logger(run))
        run.log_artifact(params_file)
        started = time.perf_counter()
        history = trainer.fit()
        seconds = time.perf_counter() - started
        assert trainer.best is not None
        trainer.load_best()
        save_atomically(trainer.model.state_dict(), MODEL_WEIGHTS)
        card = {
            "model": params.model.name,
            "outputs": list(model_outputs(params.model.name)),
            "width": params.model.width,
            "mirror_average": params.model.mirror_average,
            # The size the kept weights were trained and chosen at; evaluate uses it.
            "image_size": trainer.best.image_size,
            "best_epoch": trainer.best.epoch,
            "keep_epoch": params.train.keep_epoch,
            "run_id": run_id,
            "index_hash": index_hash,
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
        run.log_metrics({f"best_{k}": v for k, v in trainer.best.metrics().items()})
        run.log_metrics({"model_parameters": metrics["model_parameters"]})
        run.log_artifact(MODEL_WEIGHTS)
        run.log_artifact(MODEL_CARD)
    return metrics
