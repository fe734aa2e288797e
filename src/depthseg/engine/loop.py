"""The training loop: one implementation for the train stage and for every Optuna trial.

``Trainer.fit`` runs the epochs of a run built by ``engine/assembly.build_run``, validates after
each, checkpoints (last and best) and calls the caller's epoch callbacks (MLflow logging,
pruning). Randomness is drawn from generators seeded per epoch, so a run resumed from its last
checkpoint ends with the same weights as one never stopped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from depthseg.engine.assembly import RunParts
from depthseg.engine.callbacks import EpochCallback, EpochReport
from depthseg.engine.checkpoints import Progress
from depthseg.engine.compute import TrainingError
from depthseg.engine.evaluation import SplitResult, evaluate_split
from depthseg.engine.preview import Preview
from depthseg.engine.running_loss import RunningLoss


class Trainer:
    """Runs the epochs of a training run's parts; continues from their checkpoint if they say so."""

    def __init__(self, parts: RunParts, callbacks: Iterable[EpochCallback] = ()) -> None:
        self.parts = parts
        self.config = parts.config
        self.setup = parts.setup
        self.group = parts.group
        #: Called on rank 0 only, after each epoch.
        self.callbacks = list(callbacks)
        self.model = parts.trainables.model
        self.optimizer = parts.trainables.optimizer
        self.schedule = parts.trainables.schedule
        self.scaler = parts.trainables.scaler
        self.checkpoints = parts.checkpoints
        self.preview = Preview(self.model, parts.val.scenes, self.config.preview_images, self.setup)
        self.progress: Progress = self.checkpoints.resume(
            parts.trainables, self.setup.device, self.config.resume
        )
        self.first_epoch = self.progress.next_epoch

    @property
    def history(self) -> list[EpochReport]:
        return self.progress.history

    @property
    def best(self) -> EpochReport | None:
        return self.progress.best

    def train_batches(self, epoch: int, image_size: int) -> DataLoader:
        """The shuffled training batches of ``epoch`` (the order depends on the epoch alone)."""
        self.parts.train.sampler.set_epoch(epoch, image_size)
        return self.parts.train.loader

    def step(self, batch: dict[str, Any]) -> torch.Tensor:
        """One optimizer step on ``batch``; return its loss (detached)."""
        bg, bg_fg, depth, mask = self.setup.inputs(batch, self.parts.geometric)
        with self.setup.autocast():
            depth_logits, mask_logits = self.parts.train_forward(bg, bg_fg)
        loss, _ = self.parts.loss(depth_logits, mask_logits, depth, mask)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()

    def train_epoch(self, epoch: int) -> tuple[float, float, int]:
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
            skipped += batch["skipped"]
            if "scenes" not in batch:  # every scene of the batch was skipped
                continue
            checked = running.add(self.step(batch), len(batch["scenes"]))
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
        self.parts.val.sampler.set_epoch(epoch, self.config.image_size(epoch))
        self.group.share_buffers(self.model)
        return evaluate_split(
            self.parts.eval_forward,
            self.parts.val.loader,
            self.parts.loss,
            self.setup,
            group=self.group,
            predicts_depth=self.parts.params.model.predicts_depth,
        )

    def fit(self) -> list[EpochReport]:
        for epoch in range(self.first_epoch, self.config.epochs + 1):
            size = self.config.image_size(epoch)
            started = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss, rate, skipped = self.train_epoch(epoch)
            val = self.validate(epoch)
            self.schedule.epoch_done(val.loss)
            report = EpochReport(
                epoch, size, lr, train_loss, val.loss, val.metrics, rate,
                time.perf_counter() - started, skipped + val.skipped,
            )  # fmt: skip
            kept = self._keeps(report)
            self.progress = Progress([*self.history, report], report if kept else self.best)
            if not self.group.is_main:
                continue
            self.checkpoints.save(self.parts.trainables, self.progress, kept)
            print(report.summary(self.config.epochs, kept), flush=True)
            for callback in self.callbacks:
                callback(report, self.preview)
        return self.history

    def _keeps(self, report: EpochReport) -> bool:
        """Whether ``report``'s weights replace the kept ones (``train.keep_epoch``): only epochs
        at the final size compete, so validation losses are compared at one image size."""
        if report.image_size != self.config.image_size(self.config.epochs):
            return False
        if self.config.keep_epoch == "last" or self.best is None:
            return True
        return report.val_loss < self.best.val_loss

    def peak_memory_mb(self) -> float | None:
        """The most memory PyTorch held on this process's GPU so far (None off CUDA)."""
        if self.setup.device.type != "cuda":
            return None
        return torch.cuda.max_memory_allocated(self.setup.device) / 2**20

    def load_best(self) -> None:
        self.model.load_state_dict(self.checkpoints.best_weights(self.setup.device))
