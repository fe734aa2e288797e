"""Where each stage reads and writes, relative to the repository root; dvc.yaml names the same."""

from __future__ import annotations

from pathlib import Path

RAW_ARCHIVE = Path("data/raw/modest.zip")
DOWNLOAD_DIR = Path("data/download")
INDEX_FILE = Path("data/index/scenes.parquet")
INDEX_SUMMARY = Path("results/index/summary.json")
MODEL_WEIGHTS = Path("models/model.pt")
MODEL_CARD = Path("models/model.json")
CHECKPOINT_DIR = Path("models/checkpoints")
TRAIN_METRICS = Path("results/train/metrics.json")
TRAIN_HISTORY = Path("results/train/history.csv")
EVALUATE_METRICS = Path("results/evaluate/metrics.json")
EVALUATE_PER_IMAGE = Path("results/evaluate/per_image.csv")
EVALUATE_PREDICTIONS = Path("results/evaluate/predictions")
REGISTER_DECISION = Path("results/register/decision.json")
TUNE_RESULTS = Path("results/tune")
LR_FIND_RESULTS = Path("results/lr_find")
MLFLOW_BACKLOG = Path("models/checkpoints/mlflow_backlog.jsonl")
#: The MLflow run of the training that models/checkpoints/last.pt belongs to (the train stage's).
MLFLOW_RUN_ID = Path("models/checkpoints/mlflow_run_id.txt")
