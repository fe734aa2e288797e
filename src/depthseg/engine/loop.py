"""The training loop: one implementation for the train stage and for every Optuna trial.

``Trainer.fit`` runs the epochs, validates after each, checkpoints (last and best) and calls the
caller's epoch callbacks (MLflow logging, pruning). Randomness is drawn from generators seeded per
epoch, so a run resumed from its last checkpoint ends with the same weights as one never stopped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from depthseg.core.params import LossParams, Params, TrainParams
from depthseg.data.dataset import SceneDataset
from depthseg.core.errors import DepthsegError
from depthseg.core.files import replaced_atomically
from depthseg.objectives.losses import LOSS_PRESETS, JointLoss, LossWeights
from depthseg.objectives.metrics import SegDepthMetrics
from depthseg.models.dsresnet import DSResNet
from depthseg.data.transforms import build_augmentation

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


class TrainingError(DepthsegError, RuntimeError):
    """Training cannot start or go on; the message says why."""


def loss_weights(params: LossParams) -> LossWeights:
    if params.preset is not None:
        return LOSS_PRESETS[params.preset]
    return LossWeights(
        depth_rmse=params.depth.rmse,
        depth_ssim=params.depth.ssim,
        mask_bce=params.mask.bce,
        mask_dice=params.mask.dice,
    )


def select_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if not available[name]:
        raise TrainingError(f"train.device is '{name}' but no {name} device is available here")
    return torch.device(name)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32. auto: bf16 on CPU and on GPUs that have it."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@dataclass
class EpochReport:
    epoch: int
    image_size: int
    lr: float
    train_loss: float
    val_loss: float
    val: dict[str, float]
    samples_per_s: float
    seconds: float

    def metrics(self) -> dict[str, float]:
        """Flat metrics of the epoch, as MLflow and the history file record them."""
        return {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            **{f"val_{name}": value for name, value in self.val.items()},
            "lr": self.lr,
            "image_size": self.image_size,
            "samples_per_s": self.samples_per_s,
            "epoch_seconds": self.seconds,
        }


@dataclass
class SplitResult:
    loss: float
    metrics: dict[str, float]
    per_image: list[dict[str, float]] = field(default_factory=list)


EpochCallback = Callable[["Trainer", EpochReport], None]


def _resume_key(params: Params) -> dict[str, Any]:
    """What must not change between a run and its resumption."""
    train = params.train.model_dump(exclude={"epochs", "resume", "workers", "device"})
    return {"model": params.model.model_dump(), "loss": params.loss.model_dump(), "train": train}


def save_atomically(payload: Any, path: Path) -> None:
    """torch.save that never leaves a half-written file."""
    with replaced_atomically(path) as partial:
        torch.save(payload, partial)


def training_rows(table: pd.DataFrame, params: TrainParams) -> pd.DataFrame:
    rows = table[table["split"] == "train"]
    if params.train_fraction < 1.0:
        rows = rows.sample(frac=params.train_fraction, random_state=params.seed).sort_index()
    return rows


@dataclass(frozen=True)
class ComputeSetup:
    """Device, autocast dtype and memory format, shared by training and evaluation."""

    device: torch.device
    dtype: torch.dtype | None
    memory_format: torch.memory_format

    @classmethod
    def from_params(cls, params: TrainParams) -> ComputeSetup:
        device = select_device(params.device)
        memory_format = torch.channels_last if params.channels_last else torch.contiguous_format
        return cls(device, autocast_dtype(device, params.precision), memory_format)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """bg, bg_fg, depth, mask of a batch, on the device in the memory format."""

        def move(name: str) -> torch.Tensor:
            tensor = batch[name].to(self.device, non_blocking=True)
            return tensor.contiguous(memory_format=self.memory_format)

        return move("bg"), move("bg_fg"), move("depth"), move("mask")

    def predict(
        self, model: nn.Module, bg: torch.Tensor, bg_fg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Depth and mask probability, in float32."""
        with torch.no_grad(), self.autocast():
            depth_logits, mask_logits = model(bg, bg_fg)
        return torch.sigmoid(depth_logits.float()), torch.sigmoid(mask_logits.float())


def evaluate_split(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: JointLoss,
    setup: ComputeSetup,
    per_image: bool = False,
) -> SplitResult:
    """Loss and metrics over a whole split (and per image when asked)."""
    model.eval()
    metrics = SegDepthMetrics()
    images: list[dict[str, float]] = []
    total_loss, samples = 0.0, 0
    for batch in loader:
        bg, bg_fg, depth, mask = setup.inputs(batch)
        with torch.no_grad(), setup.autocast():
            depth_logits, mask_logits = model(bg, bg_fg)
            loss, _ = loss_fn(depth_logits, mask_logits, depth, mask)
        total_loss += loss.item() * len(bg)
        samples += len(bg)
        rows = metrics.update(
            torch.sigmoid(depth_logits.float()), depth, torch.sigmoid(mask_logits.float()), mask
        )
        if per_image:
            images += rows
    return SplitResult(total_loss / samples, metrics.compute(), images)


class Trainer:
    """Trains DSResNet on the train split of an index, validating on its val split."""

    def __init__(
        self,
        params: Params,
        table: pd.DataFrame,
        archive_path: Path,
        checkpoint_dir: Path,
        callbacks: Iterable[EpochCallback] = (),
    ) -> None:
        self.params = params
        self.config = params.train
        self.checkpoint_dir = checkpoint_dir
        self.callbacks = list(callbacks)
        self.setup = ComputeSetup.from_params(self.config)
        train_rows = training_rows(table, self.config)
        val_rows = table[table["split"] == "val"]
        if len(train_rows) < 2 or val_rows.empty:
            raise TrainingError(
                f"the index has {len(train_rows)} training and {len(val_rows)} validation "
                "scenes; training needs at least 2 and 1: check index.split and the data"
            )
        first_size = self.config.image_size(1)
        self.train_set = SceneDataset(
            train_rows,
            archive_path,
            first_size,
            build_augmentation(self.config.augment),
            self.config.seed,
        )
        self.val_set = SceneDataset(val_rows, archive_path, first_size)
        torch.manual_seed(self.config.seed)
        self.model = DSResNet(params.model.width).to(
            self.setup.device, memory_format=self.setup.memory_format
        )
        self.loss = JointLoss(loss_weights(params.loss))
        self.optimizer = self._build_optimizer()
        self.scheduler = self._build_scheduler()
        device = self.setup.device
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=self.setup.dtype == torch.float16 and device.type == "cuda"
        )
        self.history: list[EpochReport] = []
        self.best: EpochReport | None = None
        #: Anything the caller wants kept in checkpoints (the MLflow run id).
        self.extra: dict[str, Any] = {}
        self.first_epoch = self._resume() if self.config.resume else 1

    # -- construction -------------------------------------------------------------------------

    def _build_optimizer(self) -> torch.optim.Optimizer:
        spec = self.config.optimizer
        parameters = self.model.parameters()
        if spec.name == "sgd":
            return torch.optim.SGD(
                parameters, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
            )
        optimizer = torch.optim.Adam if spec.name == "adam" else torch.optim.AdamW
        return optimizer(parameters, lr=spec.lr, weight_decay=spec.weight_decay)

    def _build_scheduler(self) -> Any:
        spec = self.config.scheduler
        if spec.name == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, factor=0.1, patience=spec.patience, min_lr=spec.min_lr
            )
        if spec.name == "step":
            return torch.optim.lr_scheduler.StepLR(
                self.optimizer, step_size=spec.step_epochs, gamma=spec.gamma
            )
        if spec.name == "onecycle":
            total_steps = self.config.epochs * self._steps_per_epoch()
            # OneCycleLR divides by the length of its warm-up phase: keep it two steps or more.
            pct_start = max(spec.pct_start, 2 / total_steps)
            if pct_start >= 1:
                raise TrainingError(
                    f"train.scheduler.name 'onecycle' needs more than {total_steps} steps: "
                    "raise train.epochs or lower train.batch_size"
                )
            return torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer,
                max_lr=self.config.optimizer.lr,
                total_steps=total_steps,
                pct_start=pct_start,
            )
        return None

    def _steps_per_epoch(self) -> int:
        return max(1, len(self.train_set) // self.config.batch_size)

    def _loader(self, dataset: SceneDataset, epoch: int, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.config.seed * 10_007 + epoch)
        return DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            shuffle=shuffle,
            # BatchNorm needs more than one sample: drop a last batch of one.
            drop_last=shuffle and len(dataset) > self.config.batch_size,
            num_workers=self.config.workers,
            generator=generator,
            pin_memory=self.setup.device.type == "cuda",
        )

    # -- steps --------------------------------------------------------------------------------

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        """Mean training loss and samples per second."""
        self.model.train()
        loader = self._loader(self.train_set, epoch, shuffle=True)
        total_loss, samples = 0.0, 0
        started = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch}/{self.config.epochs}", leave=False, disable=None)
        for batch in bar:
            bg, bg_fg, depth, mask = self.setup.inputs(batch)
            with self.setup.autocast():
                depth_logits, mask_logits = self.model(bg, bg_fg)
            loss, _ = self.loss(depth_logits, mask_logits, depth, mask)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the training loss became {loss.item()} in epoch {epoch}: lower "
                    "train.optimizer.lr or change the loss weights"
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if isinstance(self.scheduler, torch.optim.lr_scheduler.OneCycleLR):
                self.scheduler.step()
            total_loss += loss.item() * len(bg)
            samples += len(bg)
            rate = samples / (time.perf_counter() - started)
            bar.set_postfix(loss=f"{total_loss / samples:.4f}", samples_s=f"{rate:.1f}")
        return total_loss / samples, samples / (time.perf_counter() - started)

    def validate(self, epoch: int) -> SplitResult:
        return evaluate_split(
            self.model, self._loader(self.val_set, epoch, shuffle=False), self.loss, self.setup
        )

    # -- the loop -----------------------------------------------------------------------------

    def fit(self) -> list[EpochReport]:
        for epoch in range(self.first_epoch, self.config.epochs + 1):
            size = self.config.image_size(epoch)
            for dataset in (self.train_set, self.val_set):
                dataset.image_size = size
                dataset.epoch = epoch
            started = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss, rate = self._train_epoch(epoch)
            val = self.validate(epoch)
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(val.loss)
            elif isinstance(self.scheduler, torch.optim.lr_scheduler.StepLR):
                self.scheduler.step()
            report = EpochReport(
                epoch, size, lr, train_loss, val.loss, val.metrics, rate,
                time.perf_counter() - started,
            )  # fmt: skip
            self.history.append(report)
            improved = self.best is None or report.val_loss < self.best.val_loss
            if improved:
                self.best = report
            self._checkpoint(epoch, improved)
            for callback in self.callbacks:
                callback(self, report)
        return self.history

    # -- checkpoints --------------------------------------------------------------------------

    def _checkpoint(self, epoch: int, improved: bool) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if improved:
            save_atomically(
                {"epoch": epoch, "model": self.model.state_dict()},
                self.checkpoint_dir / BEST_CHECKPOINT,
            )
        save_atomically(
            {
                "epoch": epoch,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "scaler": self.scaler.state_dict(),
                "history": [asdict(report) for report in self.history],
                "best_epoch": self.best.epoch if self.best else None,
                "resume_key": _resume_key(self.params),
                "extra": self.extra,
            },
            self.checkpoint_dir / LAST_CHECKPOINT,
        )

    def _resume(self) -> int:
        """Load the last checkpoint; return the first epoch still to run."""
        path = self.checkpoint_dir / LAST_CHECKPOINT
        if not path.is_file():
            print(f"train.resume: no checkpoint at {path}, starting from epoch 1")
            return 1
        state = torch.load(path, map_location=self.setup.device, weights_only=False)
        if state["resume_key"] != _resume_key(self.params):
            changed = sorted(
                f"{section}.{key}"
                for section, values in _resume_key(self.params).items()
                for key, value in values.items()
                if state["resume_key"][section].get(key) != value
            )
            raise TrainingError(
                f"cannot resume from {path}: it was trained with other values of "
                f"{', '.join(changed)}; restore them or set train.resume: false"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.history = [EpochReport(**report) for report in state["history"]]
        self.best = next((r for r in self.history if r.epoch == state["best_epoch"]), None)
        self.extra = state["extra"]
        print(f"train.resume: continuing {path} after epoch {state['epoch']}")
        return state["epoch"] + 1

    def load_best(self) -> None:
        state = torch.load(self.checkpoint_dir / BEST_CHECKPOINT, map_location=self.setup.device)
        self.model.load_state_dict(state["model"])
