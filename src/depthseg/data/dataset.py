"""A torch Dataset over the index: reads a scene's four images lazily from the stored zip."""

from __future__ import annotations

import random
from collections import OrderedDict
from pathlib import Path

import albumentations as A
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, default_collate

from depthseg.data import layout
from depthseg.data.archive import ArchiveError, MemberReader
from depthseg.data.decoding import ImageError, decode_image
from depthseg.data.sampling import SceneKey
from depthseg.data.scene_images import image_ranges, read_image
from depthseg.data.transforms import binary_mask, chw_tensor

#: Decoded backgrounds each process keeps (at 160 px, 77 KB each).
BACKGROUND_CACHE = 256


def _packed(column: pd.Series) -> np.ndarray:
    return np.array(column.str.encode("utf-8").tolist(), dtype=np.bytes_)


class DecodedImages:
    """The last ``capacity`` decoded images put in, by key; read-only, so none is changed."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.images: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    def get(self, key: tuple[int, int]) -> np.ndarray | None:
        image = self.images.get(key)
        if image is not None:
            self.images.move_to_end(key)
        return image

    def put(self, key: tuple[int, int], image: np.ndarray) -> None:
        image.flags.writeable = False
        self.images[key] = image
        if len(self.images) > self.capacity:
            self.images.popitem(last=False)


class SceneDataset(Dataset[dict[str, torch.Tensor]]):
    """Scenes of ``table`` as uint8 tensors: ``bg``, ``bg_fg`` (RGB), ``mask`` (0 or 1) and
    ``depth`` (0..255); ``ComputeSetup.inputs`` turns a batch of them into the network's floats.

    A key is a row number, read at ``image_size`` without augmentation draws of any epoch, or a
    ``SceneKey`` from ``EpochSampler`` that says the size and the epoch.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        archive_path: Path,
        image_size: int,
        augmentation: A.Compose | None = None,
        seed: int = 0,
        skip_bad: bool = False,
    ) -> None:
        # Numbers and fixed-width bytes, no Python objects: forked workers read them without
        # touching reference counts, so the pages stay shared (400,000 rows, several workers).
        self.scenes = _packed(table["scene"])
        self.ranges = {kind: image_ranges(table, kind) for kind in layout.IMAGE_KINDS}
        self.names = {kind: _packed(table[kind]) for kind in layout.IMAGE_KINDS}
        self.reader = MemberReader(archive_path)
        # Backgrounds repeat across scenes (100 behind the release's 400,000): each process
        # decodes each once per size.
        self.backgrounds = DecodedImages(BACKGROUND_CACHE)
        self.image_size = image_size
        self.augmentation = augmentation
        self.seed = seed
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.scenes)

    def _read(self, kind: str, index: int, image_size: int, mode: str) -> np.ndarray:
        image_range = self.ranges[kind][index]
        offset = int(image_range[0])
        if kind == "bg" and (cached := self.backgrounds.get((offset, image_size))) is not None:
            return cached
        name = self.names[kind][index].decode()
        try:
            data = read_image(self.reader, image_range, name)
        except ArchiveError as error:
            raise ImageError(str(error)) from None
        pixels = decode_image(data, image_size, mode, f"{self.reader.path}:{name}")
        if kind == "bg":
            self.backgrounds.put((offset, image_size), pixels)
        return pixels

    def __getitem__(self, key: int | SceneKey) -> dict[str, torch.Tensor] | None:
        """The scene's tensors; None for a bad scene when ``skip_bad`` (see ``collate_scenes``)."""
        index, size, epoch = key if isinstance(key, SceneKey) else (key, self.image_size, 0)
        try:
            images = {
                "image": self._read("bg", index, size, "RGB"),
                "bg_fg": self._read("bg_fg", index, size, "RGB"),
                "mask": self._read("mask", index, size, "L"),
                "depth": self._read("depth", index, size, "L"),
            }
        except ImageError as error:
            if self.skip_bad:
                return None
            raise ImageError(f"scene {self.scenes[index].decode()}: {error}") from None
        if self.augmentation is not None:
            # Seeded per scene and epoch: the same draws whatever the number of workers. One
            # generator shared by all transforms: set_random_seed would give each transform its
            # own generator with the same seed, so their draws would coincide (flip iff affine).
            seed = hash((self.seed, epoch, index)) & 0x7FFFFFFF
            self.augmentation.set_random_state(np.random.default_rng(seed), random.Random(seed))
            images = self.augmentation(**images)
        return {
            "index": torch.tensor(index),
            "bg": chw_tensor(images["image"]),
            "bg_fg": chw_tensor(images["bg_fg"]),
            "mask": chw_tensor(binary_mask(images["mask"])),
            "depth": chw_tensor(images["depth"]),
        }


def collate_scenes(samples: list[dict[str, torch.Tensor] | None]) -> dict[str, torch.Tensor]:
    """A batch of the scenes that could be read, and ``skipped``: how many could not."""
    kept = [sample for sample in samples if sample is not None]
    batch: dict[str, torch.Tensor] = default_collate(kept) if kept else {}
    batch["skipped"] = torch.tensor(len(samples) - len(kept))
    return batch
