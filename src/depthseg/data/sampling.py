"""Which scenes an epoch reads, in which order and at which size: the sampler of every loader.

The sampler, not the dataset, carries the epoch and the image size: it runs in the main process
and hands each worker keys ``(index, image_size, epoch)``, so worker processes can live across
epochs (``persistent_workers``) and still read each epoch at its own size with its own
augmentation draws.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch.utils.data import Sampler


class SceneKey(NamedTuple):
    """One scene to read: its row in the dataset, the size to read it at, the epoch it is for."""

    index: int
    image_size: int
    epoch: int


class EpochSampler(Sampler[SceneKey]):
    """The scenes of one epoch for one process.

    ``shuffle``: the order is drawn from ``seed`` and the epoch alone, so a resumed run reads what
    an uninterrupted one would. ``scenes_per_epoch`` fixes how many scenes an epoch reads: beyond
    the dataset's size further shuffled passes follow, below it the epoch reads the first ones
    (None: each scene once). Without ``shuffle`` every scene is read once, in order.

    Under DDP (``world_size`` processes) each process takes every ``world_size``-th scene of that
    one order: shuffled epochs are cut to a multiple of ``world_size`` so that every process runs
    the same number of steps; ordered ones (validation) keep every scene exactly once.
    """

    def __init__(
        self,
        length: int,
        image_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        scenes_per_epoch: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.length = length
        self.image_size = image_size
        self.epoch = 1
        self.shuffle = shuffle
        self.seed = seed
        self.scenes = scenes_per_epoch if shuffle and scenes_per_epoch else length
        if shuffle:
            self.scenes -= self.scenes % world_size
        self.rank = rank
        self.world_size = world_size

    def set_epoch(self, epoch: int, image_size: int) -> None:
        self.epoch = epoch
        self.image_size = image_size

    def order(self) -> torch.Tensor:
        """The indices of the whole epoch, across all processes."""
        if not self.shuffle:
            return torch.arange(self.length)
        generator = torch.Generator().manual_seed(self.seed * 10_007 + self.epoch)
        passes = -(-self.scenes // self.length)
        order = [torch.randperm(self.length, generator=generator) for _ in range(passes)]
        return torch.cat(order)[: self.scenes]

    def __iter__(self) -> Iterator[SceneKey]:
        for index in self.order()[self.rank :: self.world_size].tolist():
            yield SceneKey(index, self.image_size, self.epoch)

    def __len__(self) -> int:
        return len(range(self.rank, self.scenes, self.world_size))
