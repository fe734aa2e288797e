"""The training loop: one implementation for the train stage and for every Optuna trial.

``Trainer.fit`` runs the epochs, validates after each, checkpoints (last and best) and calls the
caller's epoch callbacks (MLflow logging, pruning). Randomness is drawn from generators seeded per
epoch, so a run resumed from its last checkpoint ends with the same weights as one never stopped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from depthseg.core.params import Params, TrainParams
from depthseg.data.dataset import SceneDataset, collate_scenes
from depthseg.data.sampling import EpochSampler
from depthseg.data.transforms import build_augmentation
from depthseg.engine.callbacks import EpochCallback, EpochReport
from depthseg.engine.checkpoints import Checkpoints, data_fingerprint
from depthseg.engine.compute import ComputeSetup, TrainingError
from depthseg.engine.distributed import ONE_PROCESS, ProcessGroup
from depthseg.engine.evaluation import SplitResult, evaluate_split
from depthseg.engine.recipe import LRSchedule, build_loss, build_optimizer
from depthseg.engine.running_loss import RunningLoss
from depthseg.models.dsresnet import DSResNet


def training_rows(table: pd.DataFrame, params: TrainParams) -> pd.DataFrame:
    rows = table[table["split"] == "train"]
    if params.train_fraction < 1.0:
        rows = rows.sample(frac=params.train_fraction, random_state=params.seed).sort_index()
    return rows


class Trainer:
    """Trains DSResNet on the train split of an index, validating on its val split."""

    def __init__(
        self,
        params: Params,
        table: pd.DataFrame,
        archive_path: Path,
        checkpoint_dir: Path,
        callbacks: Iterable[EpochCallback] = (),
        group: ProcessGroup = ONE_PROCESS,
    ) -> None:
        self.params = params
        self.config = params.train
        #: Called on rank 0 only, after each epoch.
        self.callbacks = list(callbacks)
        self.group = group
        setup = ComputeSetup.from_params(self.config)
        self.setup = replace(setup, device=group.device(setup.device))
        train_rows = training_rows(table, self.config)
        val_rows = table[table["split"] == "val"]
        if len(train_rows) < 2 or val_rows.empty:
            raise TrainingError(
                f"the index has {len(train_rows)} training and {len(val_rows)} validation "
                "scenes; training needs at least 2 and 1: check index.split and the data"
            )
        first_size = self.config.image_size(1)
        skip_bad = self.config.on_bad_image == "skip"
        self.train_set = SceneDataset(
            train_rows,
            archive_path,
            first_size,
            build_augmentation(self.config.augment),
            self.config.seed,
            skip_bad,
        )
        self.val_set = SceneDataset(val_rows, archive_path, first_size, skip_bad=skip_bad)
        self.train_sampler = EpochSampler(
            len(self.train_set),
            first_size,
            shuffle=True,
            seed=self.config.seed,
            scenes_per_epoch=self.config.scenes_per_epoch,
            rank=group.rank,
            world_size=group.world_size,
        )
        self.val_sampler = EpochSampler(
            len(self.val_set),
            first_size,
            shuffle=False,
            rank=group.rank,
            world_size=group.world_size,
        )
        # BatchNorm needs more than one sample: drop a last batch of one.
        drop_last = len(self.train_sampler) > self.config.batch_size
        self.train_loader = self._loader(self.train_set, self.train_sampler, drop_last)
        self.val_loader = self._loader(self.val_set, self.val_sampler, drop_last=False)
        torch.manual_seed(self.config.seed)
        self.model = DSResNet(params.model.width).to(
            self.setup.device, memory_format=self.setup.memory_format
        )
        # What computes shares the model's weights: in training, DDP's wrapper (which averages
        # gradients over processes) when there are several; compiled when train.compile asks.
        # Validation needs no gradients, so no wrapper: every process validates its share.
        self.network = self._compiled(group.wrap(self.model, self.setup.device))
        self.evaluator = self._compiled(self.model) if group.distributed else self.network
        self.loss = build_loss(params.loss)
        self.optimizer = build_optimizer(self.model, self.config.optimizer)
        self.schedule = LRSchedule(self.optimizer, self.config, len(self.train_loader))
        self.scaler = torch.amp.GradScaler(self.setup.device.type, enabled=self.setup.scales_loss)
        self.checkpoints = Checkpoints(
            checkpoint_dir,
            params,
            data_fingerprint(pd.concat([train_rows, val_rows])),
            group.world_size,
        )
        self.history: list[EpochReport] = []
        self.best: EpochReport | None = None
        #: Anything the caller wants kept in checkpoints (the MLflow run id).
        self.extra: dict[str, Any] = {}
        self.first_epoch = self._resume()

    def _compiled(self, model: nn.Module) -> nn.Module:
        return torch.compile(model) if self.config.compile else model

    def _loader(self, dataset: SceneDataset, sampler: EpochSampler, drop_last: bool) -> DataLoader:
        """One loader for the whole run: its workers stay alive across epochs, since the sampler
        tells them each epoch and size."""
        return DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.config.workers,
            persistent_workers=self.config.workers > 0,
            pin_memory=self.setup.device.type == "cuda",
            collate_fn=collate_scenes,
        )

    def train_batches(self, epoch: int, image_size: int) -> DataLoader:
        """The shuffled training batches of ``epoch`` (the order depends on the epoch alone)."""
        self.train_sampler.set_epoch(epoch, image_size)
        return self.train_loader

    def step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One optimizer step on ``batch``; return its loss (detached)."""
        bg, bg_fg, depth, mask = self.setup.inputs(batch)
        with self.setup.autocast():
            depth_logits, mask_logits = self.network(bg, bg_fg)
        loss, _ = self.loss(depth_logits, mask_logits, depth, mask)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()

    def _train_epoch(self, epoch: int) -> tuple[float, float, int]:
        """Mean training loss, samples per second and scenes skipped."""
        self.model.train()
        running = RunningLoss(self.setup.device, epoch)
        skipped = 0
        started = time.perf_counter()
        bar = tqdm(
            self.train_batches(epoch, self.config.image_size(epoch)),
            desc=f"epoch {epoch}/{self.config.epochs}",
            leave=False,
            disable=None,
        )
        for batch in bar:
            skipped += int(batch["skipped"])
            if "bg" not in batch:  # every scene of the batch was skipped
                continue
            checked = running.add(self.step(batch), len(batch["bg"]))
            self.schedule.batch_done()
            if checked and not bar.disable:
                rate = running.samples / (time.perf_counter() - started)
                bar.set_postfix(loss=f"{running.mean():.4f}", samples_s=f"{rate:.1f}")
        running.check()
        loss_sum, samples, skipped_all = self.group.summed(
            running.total.item(), running.samples, skipped
        )
        if samples == 0:
            raise TrainingError(f"no training scene could be read in epoch {epoch}")
        return loss_sum / samples, samples / (time.perf_counter() - started), int(skipped_all)

    def validate(self, epoch: int) -> SplitResult:
        self.val_sampler.set_epoch(epoch, self.config.image_size(epoch))
        self.group.share_buffers(self.model)
        return evaluate_split(
            self.evaluator, self.val_loader, self.loss, self.setup, group=self.group
        )

    def fit(self) -> list[EpochReport]:
        for epoch in range(self.first_epoch, self.config.epochs + 1):
            size = self.config.image_size(epoch)
            started = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss, rate, skipped = self._train_epoch(epoch)
            val = self.validate(epoch)
            self.schedule.epoch_done(val.loss)
            report = EpochReport(
                epoch, size, lr, train_loss, val.loss, val.metrics, rate,
                time.perf_counter() - started, skipped + val.skipped,
            )  # fmt: skip
            self.history.append(report)
            kept = self._keeps(report)
            if kept:
                self.best = report
            if not self.group.is_main:
                continue
            self.checkpoints.save(self._state(epoch), kept)
            print(report.summary(self.config.epochs, kept), flush=True)
            for callback in self.callbacks:
                callback(self, report)
        return self.history

    def _keeps(self, report: EpochReport) -> bool:
        """Whether ``report``'s weights replace the kept ones (``train.keep_epoch``): only epochs
        at the final size compete, so validation losses are compared at one image size."""
        if report.image_size != self.config.image_size(self.config.epochs):
            return False
        if self.config.keep_epoch == "last" or self.best is None:
            return True
        return report.val_loss < self.best.val_loss

    def _state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "history": [asdict(report) for report in self.history],
            "best_epoch": self.best.epoch if self.best else None,
            "extra": self.extra,
        }

    def _resume(self) -> int:
        """Load the last checkpoint; return the first epoch still to run."""
        state = self.checkpoints.resumable(self.setup.device, self.config.resume)
        if state is None:
            return 1
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.history = [EpochReport(**report) for report in state["history"]]
        self.best = next((r for r in self.history if r.epoch == state["best_epoch"]), None)
        self.extra = state["extra"]
        print(f"train.resume: continuing {self.checkpoints.last} after epoch {state['epoch']}")
        return state["epoch"] + 1

    def peak_memory_mb(self) -> float | None:
        """The most memory PyTorch held on this process's GPU so far (None off CUDA)."""
        if self.setup.device.type != "cuda":
            return None
        return torch.cuda.max_memory_allocated(self.setup.device) / 2**20

    def load_best(self) -> None:
        self.model.load_state_dict(self.checkpoints.best_weights(self.setup.device))
