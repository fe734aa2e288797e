"""Checkpoints of a training: the last epoch's full state (to resume), the best epoch's weights."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from depthseg.core.errors import DepthsegError, first_line
from depthseg.core.files import replaced_atomically
from depthseg.core.params import ImageSize, ModelWidth, Params
from depthseg.engine.compute import TrainingError
from depthseg.models.dsresnet import DSResNet
from depthseg.models.mirror_averaged import MirrorAveraged

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


def save_atomically(payload: Any, path: Path) -> None:
    """torch.save that never leaves a half-written file."""
    with replaced_atomically(path) as partial:
        torch.save(payload, partial)


class ModelCard(BaseModel):
    """What train writes beside the weights (``models/model.json``); a card from a registry is
    checked like any input from outside, so that it cannot ask for a huge network."""

    model_config = ConfigDict(extra="allow")

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
    model = DSResNet(details.width)
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except (RuntimeError, pickle.UnpicklingError, OSError, EOFError) as error:
        reason = first_line(error)[:300]
        raise DepthsegError(
            f"{weights}: not the weights of a width-{details.width:g} DSResNet ({reason})"
        ) from None
    network = MirrorAveraged(model) if details.mirror_average else model
    return network.eval(), details.model_dump()


def data_fingerprint(table: pd.DataFrame) -> str:
    """Which scenes, in which splits: a re-index with another split gives another value."""
    rows = (table["scene"] + ":" + table["split"]).str.cat(sep="\n")
    return hashlib.md5(rows.encode()).hexdigest()[:12]


def resume_key(params: Params, data: str, processes: int = 1) -> dict[str, Any]:
    """What must not change between a run and its resumption. ``train.epochs`` may grow for
    every schedule but OneCycle, whose shape is fixed by the total number of steps; the number
    of DDP processes may not (it sets the steps per epoch)."""
    exclude = {"resume", "workers", "device", "preview_images"}
    if params.train.scheduler.name != "onecycle":
        exclude.add("epochs")
    train = params.train.model_dump(exclude=exclude)
    return {
        "model": params.model.model_dump(exclude={"mirror_average"}),  # prediction only
        "loss": params.loss.model_dump(),
        "train": train,
        "data": {"fingerprint": data},
        "run": {"processes": processes},
    }


class Checkpoints:
    """``last.pt`` and ``best.pt`` in ``folder``, for a training with ``params`` on ``data``."""

    def __init__(self, folder: Path, params: Params, data: str, processes: int = 1) -> None:
        self.folder = folder
        self.key = resume_key(params, data, processes)
        self.epochs = params.train.epochs

    @property
    def last(self) -> Path:
        return self.folder / LAST_CHECKPOINT

    def save(self, state: dict[str, Any], kept: bool) -> None:
        """Write the epoch's full ``state`` as the last checkpoint; its weights as best.pt too when
        they are the ones kept (``train.keep_epoch``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if kept:
            save_atomically(
                {"epoch": state["epoch"], "model": state["model"]},
                self.folder / BEST_CHECKPOINT,
            )
        save_atomically({**state, "resume_key": self.key}, self.last)

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
