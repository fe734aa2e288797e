"""Builds a training run's parts from params, once, in one place: data, network, recipe,
checkpoints. The loop (``engine/loop.py``) receives them and only runs epochs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from depthseg.core.params import Params, TrainParams
from depthseg.data.augmentation import GeometricChange, PhotometricChange
from depthseg.data.dataset import SceneDataset, collate_scenes
from depthseg.data.decoded_cache import CACHE_PREFIX, DecodedScenes
from depthseg.data.decoding import opencv_threads_for_loader
from depthseg.data.sampling import EpochSampler
from depthseg.engine.checkpoints import Checkpoints, Trainables, split_assignment_hash
from depthseg.engine.compute import ComputeSetup, TrainingError
from depthseg.engine.distributed import ONE_PROCESS, ProcessGroup
from depthseg.engine.recipe import LRSchedule, build_loss, build_optimizer
from depthseg.models.catalog import build_network
from depthseg.objectives.losses import JointLoss


@dataclass(frozen=True)
class Split:
    """One split's scenes, the sampler that tells each epoch's order and size, and its loader."""

    scenes: SceneDataset
    sampler: EpochSampler
    loader: DataLoader


@dataclass(frozen=True)
class RunParts:
    """Everything a training run is made of. ``trainables.model`` holds the weights (checkpoints,
    previews and the kept model read it); ``train_forward`` and ``eval_forward`` compute with
    them: in training DDP's wrapper when there are several processes (it averages gradients),
    compiled when ``train.compile`` asks; validation needs no wrapper."""

    params: Params
    setup: ComputeSetup
    group: ProcessGroup
    train: Split
    val: Split
    trainables: Trainables
    train_forward: nn.Module
    eval_forward: nn.Module
    geometric: GeometricChange | None
    loss: JointLoss
    checkpoints: Checkpoints

    @property
    def config(self) -> TrainParams:
        return self.params.train


def training_rows(table: pd.DataFrame, params: TrainParams) -> pd.DataFrame:
    rows = table[table["split"] == "train"]
    if params.train_fraction < 1.0:
        rows = rows.sample(frac=params.train_fraction, random_state=params.seed).sort_index()
    return rows


def decoded_cache(
    split: str, scenes: int, config: TrainParams, group: ProcessGroup
) -> DecodedScenes | None:
    """A cache of the decoded scenes of ``split`` at every size the run trains at, when it asks
    for one and reads scenes more than once. DDP's processes on one machine share one: each
    reads another share of every epoch, so one of its own would fill one epoch in N."""
    if not config.decoded_cache or config.epochs < 2:
        return None
    sizes = {config.image_size(epoch) for epoch in range(1, config.epochs + 1)}
    name = f"{CACHE_PREFIX}{group.from_rank_0(uuid.uuid4().hex)}-{split}"
    made = None
    if group.local_rank == 0:  # one per machine; in one process, this one
        made = DecodedScenes.in_temporary_folder(scenes, sizes, name)
    group.barrier()
    return made or DecodedScenes.made_by_another(name, scenes, sizes)


def _loader(
    dataset: SceneDataset, sampler: EpochSampler, config: TrainParams, setup: ComputeSetup
) -> DataLoader:
    """One loader for the whole run: its workers stay alive across epochs, since the sampler
    tells them each epoch and size. BatchNorm needs more than one sample: a shuffled split
    drops a last batch of one."""
    opencv_threads_for_loader(config.workers)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        drop_last=sampler.shuffle and len(sampler) > config.batch_size,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        pin_memory=setup.device.type == "cuda",
        collate_fn=collate_scenes,
    )


def build_run(
    params: Params,
    table: pd.DataFrame,
    archive_path: Path,
    checkpoint_dir: Path,
    group: ProcessGroup = ONE_PROCESS,
) -> RunParts:
    """The parts of a training of the network ``model.name`` on the train split of an index,
    validated on its val split, checkpointed in ``checkpoint_dir``."""
    config = params.train
    setup = ComputeSetup.from_params(config)
    setup = replace(setup, device=group.device(setup.device))
    train_rows = training_rows(table, config)
    val_rows = table[table["split"] == "val"]
    if len(train_rows) < 2 or val_rows.empty:
        raise TrainingError(
            f"the index has {len(train_rows)} training and {len(val_rows)} validation "
            "scenes; training needs at least 2 and 1: check index.split and the data"
        )
    size, skip_bad = config.image_size(1), config.on_bad_image == "skip"
    augment, seed = config.augment, config.seed
    photometric = PhotometricChange(augment) if PhotometricChange.wanted(augment) else None
    geometric = GeometricChange(augment) if GeometricChange.wanted(augment) else None
    augment_seed = seed if photometric is not None or geometric is not None else None
    train_set = SceneDataset(
        train_rows, archive_path, size, augment_seed, photometric, skip_bad,
        decoded_cache("train", len(train_rows), config, group),
    )  # fmt: skip
    val_cache = decoded_cache("val", len(val_rows), config, group)
    val_set = SceneDataset(val_rows, archive_path, size, skip_bad=skip_bad, cache=val_cache)
    shares = {"rank": group.rank, "world_size": group.world_size}
    train_sampler = EpochSampler(
        len(train_set),
        size,
        shuffle=True,
        seed=config.seed,
        scenes_per_epoch=config.scenes_per_epoch,
        **shares,
    )
    val_sampler = EpochSampler(len(val_set), size, shuffle=False, **shares)
    train = Split(train_set, train_sampler, _loader(train_set, train_sampler, config, setup))
    val = Split(val_set, val_sampler, _loader(val_set, val_sampler, config, setup))

    torch.manual_seed(config.seed)
    network = build_network(params.model.name, params.model.width)
    model = network.to(setup.device, memory_format=setup.memory_format)
    optimizer = build_optimizer(model, config.optimizer)
    trainables = Trainables(
        model,
        optimizer,
        LRSchedule(optimizer, config, len(train.loader)),
        torch.amp.GradScaler(setup.device.type, enabled=setup.scales_loss),
    )
    train_forward = group.wrap(model, setup.device)
    eval_forward = model if group.distributed else train_forward
    if config.compile:
        train_forward = torch.compile(train_forward)
        eval_forward = torch.compile(eval_forward) if group.distributed else train_forward
    splits_hash = split_assignment_hash(pd.concat([train_rows, val_rows]))
    checkpoints = Checkpoints(checkpoint_dir, params, splits_hash, group.world_size)
    return RunParts(
        params, setup, group, train, val, trainables, train_forward, eval_forward,
        geometric, build_loss(params.loss), checkpoints,
    )  # fmt: skip
