"""Checkpoints of a training: the last epoch's full state (to resume), the best epoch's weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from depthseg.core.files import replaced_atomically
from depthseg.core.params import Params
from depthseg.engine.compute import TrainingError

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


def save_atomically(payload: Any, path: Path) -> None:
    """torch.save that never leaves a half-written file."""
    with replaced_atomically(path) as partial:
        torch.save(payload, partial)


def resume_key(params: Params) -> dict[str, Any]:
    """What must not change between a run and its resumption."""
    train = params.train.model_dump(exclude={"epochs", "resume", "workers", "device"})
    return {"model": params.model.model_dump(), "loss": params.loss.model_dump(), "train": train}


class Checkpoints:
    """``last.pt`` and ``best.pt`` in ``folder``, for a training with ``params``."""

    def __init__(self, folder: Path, params: Params) -> None:
        self.folder = folder
        self.key = resume_key(params)

    @property
    def last(self) -> Path:
        return self.folder / LAST_CHECKPOINT

    def save(self, state: dict[str, Any], improved: bool) -> None:
        """Write the epoch's full ``state`` as the last checkpoint, its weights as the best too."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if improved:
            save_atomically(
                {"epoch": state["epoch"], "model": state["model"]},
                self.folder / BEST_CHECKPOINT,
            )
        save_atomically({**state, "resume_key": self.key}, self.last)

    def load_last(self, device: torch.device) -> dict[str, Any] | None:
        """The last checkpoint's state, or None when there is none; refuse one of other params."""
        if not self.last.is_file():
            print(f"train.resume: no checkpoint at {self.last}, starting from epoch 1")
            return None
        state = torch.load(self.last, map_location=device, weights_only=False)
        saved = state["resume_key"]
        if saved != self.key:
            changed = sorted(
                f"{section}.{key}"
                for section, values in self.key.items()
                for key, value in values.items()
                if saved[section].get(key) != value
            )
            raise TrainingError(
                f"cannot resume from {self.last}: it was trained with other values of "
                f"{', '.join(changed)}; restore them or set train.resume: false"
            )
        return state

    def best_weights(self, device: torch.device) -> dict[str, torch.Tensor]:
        return torch.load(self.folder / BEST_CHECKPOINT, map_location=device)["model"]
