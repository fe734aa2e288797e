"""Checkpoints of a training: the last epoch's full state (to resume), the best epoch's weights."""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from depthseg.core.errors import DepthsegError, first_line
from depthseg.core.files import replaced_atomically
from depthseg.core.params import ImageSize, ModelName, ModelWidth, Params
from depthseg.engine.callbacks import EpochReport
from depthseg.engine.compute import TrainingError
from depthseg.engine.recipe import LRSchedule
from depthseg.models.catalog import build_network
from depthseg.models.mirror_averaged import MirrorAveraged

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


@dataclass(frozen=True)
class Trainables:
    """What changes as a run trains, and what a checkpoint saves and restores of it."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])


@dataclass(frozen=True)
class Progress:
    """Where a run stands: the epochs done (none when it starts afresh) and the one kept so far."""

    history: list[EpochReport]
    best: EpochReport | None

    @property
    def next_epoch(self) -> int:
        return self.history[-1].epoch + 1 if self.history else 1


def save_atomically(payload: Any, path: Path) -> None:
    """torch.save that never leaves a half-written file."""
    with replaced_atomically(path) as partial:
        torch.save(payload, partial)


class ModelCard(BaseModel):
    """What train writes beside the weights (``models/model.json``); a card from a registry is
    checked like any input from outside, so that it cannot ask for a huge network."""

    model_config = ConfigDict(extra="allow")

    # Cards written before MaskNet existed describe DSResNet.
    model: ModelName = "dsresnet"
    width: ModelWidth
    image_size: ImageSize
    # Cards written before the option existed describe plain predictions.
    mirror_average: bool = False


def load_trained(weights: Path, card: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network of the kept weights (a state dict, loaded without unpickling code), mirror
    averaged when its model card says so, and the card."""
    for path in (weights, card):
        if not path.is_file():
            raise DepthsegError(f"{path} is missing: run `dvc repro train` first")
    try:
        details = ModelCard.model_validate_json(card.read_bytes())
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in error.errors()
        )
        raise DepthsegError(f"{card}: not a model card written by train ({problems})") from None
    model = build_network(details.model, details.width)
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except (RuntimeError, pickle.UnpicklingError, OSError, EOFError) as error:
        reason = first_line(error)[:300]
        raise DepthsegError(
            f"{weights}: not the weights of a width-{details.width:g} {details.model} ({reason})"
        ) from None
    network = MirrorAveraged(model) if details.mirror_average else model
    return network.eval(), details.model_dump()


def split_assignment_hash(table: pd.DataFrame) -> str:
    """Short hash of which scenes are in which split: a re-index with another split changes it."""
    rows = (table["scene"] + ":" + table["split"]).str.cat(sep="\n")
    return hashlib.md5(rows.encode()).hexdigest()[:12]


def resume_key(params: Params, splits_hash: str, processes: int = 1) -> dict[str, Any]:
    """What must not change between a run and its resumption. ``train.epochs`` may grow for
    every schedule but OneCycle, whose shape is fixed by the total number of steps; the number
    of DDP processes may not (it sets the steps per epoch)."""
    exclude = {"resume", "workers", "decoded_cache", "device", "preview_images"}
    if params.train.scheduler.name != "onecycle":
        exclude.add("epochs")
    train = params.train.model_dump(exclude=exclude)
    return {
        "model": params.model.model_dump(exclude={"mirror_average"}),  # prediction only
        "loss": params.loss.model_dump(),
        "train": train,
        "data": {"split_assignment_hash": splits_hash},
        "run": {"processes": processes},
    }


class Checkpoints:
    """``last.pt`` and ``best.pt`` in ``folder``, for a training with ``params`` on the scenes
    whose split assignment hashes to ``splits_hash``."""

    def __init__(self, folder: Path, params: Params, splits_hash: str, processes: int = 1) -> None:
        self.folder = folder
        self.key = resume_key(params, splits_hash, processes)
        self.epochs = params.train.epochs

    @property
    def last(self) -> Path:
        return self.folder / LAST_CHECKPOINT

    def save(self, trainables: Trainables, progress: Progress, kept: bool) -> None:
        """Write the state after the last epoch of ``progress`` as the last checkpoint; its
        weights as best.pt too when they are the ones kept (``train.keep_epoch``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        state = trainables.state_dict()
        epoch = progress.history[-1].epoch
        if kept:
            save_atomically(
                {"epoch": epoch, "model": state["model"]}, self.folder / BEST_CHECKPOINT
            )
        save_atomically(
            {
                **state,
                "epoch": epoch,
                "history": [asdict(report) for report in progress.history],
                "best_epoch": progress.best.epoch if progress.best else None,
                "resume_key": self.key,
            },
            self.last,
        )

    def resume(self, trainables: Trainables, device: torch.device, mode: str | bool) -> Progress:
        """Load the last checkpoint into ``trainables`` when ``train.resume`` (``mode``) says so;
        say where the run stands (no epoch done when it starts afresh)."""
        state = self.resumable(device, mode)
        if state is None:
            return Progress([], None)
        trainables.load_state_dict(state)
        history = [EpochReport(**report) for report in state["history"]]
        best = next((r for r in history if r.epoch == state["best_epoch"]), None)
        print(f"train.resume: continuing {self.last} after epoch {state['epoch']}")
        return Progress(history, best)

    def _changed(self, saved: dict[str, Any]) -> list[str]:
        return sorted(
            f"{section}.{key}"
            for section, values in self.key.items()
            for key, value in values.items()
            if saved.get(section, {}).get(key) != value
        )

    def resumable(self, device: torch.device, mode: str | bool) -> dict[str, Any] | None:
        """The last checkpoint's state to continue from, or None to start at epoch 1.

        ``mode`` is ``train.resume``: False never resumes; True resumes or refuses a checkpoint
        of other params or data; "auto" resumes an unfinished compatible one, else starts afresh.
        """
        if mode is False:
            return None
        if not self.last.is_file():
            if mode is True:
                print(f"train.resume: no checkpoint at {self.last}, starting from epoch 1")
            return None
        state = torch.load(self.last, map_location=device, weights_only=True)
        changed = self._changed(state["resume_key"])
        if changed and mode is True:
            raise TrainingError(
                f"cannot resume from {self.last}: it was trained with other values of "
                f"{', '.join(changed)}; restore them or set train.resume: false"
            )
        if changed:
            print(f"train.resume auto: {self.last} has other {', '.join(changed)}; starting afresh")
            return None
        if mode == "auto" and state["epoch"] >= self.epochs:
            print(f"train.resume auto: {self.last} is a finished run; starting afresh")
            return None
        return state

    def best_weights(self, device: torch.device) -> dict[str, torch.Tensor]:
        return torch.load(self.folder / BEST_CHECKPOINT, map_location=device, weights_only=True)[
            "model"
        ]
