"""A torch Dataset over the index: reads a scene's four images lazily from the stored zip."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from torch.utils.data import Dataset, default_collate

from depthseg.data import layout
from depthseg.data.archive import ArchiveError, MemberReader
from depthseg.data.decoded_cache import DecodedScenes, StoredScene
from depthseg.data.decoding import ImageError, decode_image
from depthseg.data.draws import scene_draws
from depthseg.data.sampling import SceneKey
from depthseg.data.scene_images import image_ranges, read_image
from depthseg.data.transforms import scene_tensor

if TYPE_CHECKING:  # evaluation reads scenes without augmenting them, or importing albumentations
    from depthseg.data.augmentation import PhotometricChange

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


class SceneDataset(Dataset[dict[str, Any]]):
    """Scenes of ``table``, each a ``scene``: one uint8 tensor of ``bg``, ``bg_fg`` (RGB),
    ``depth`` (0..255) and ``mask`` (0 or 1), see ``transforms.SCENE_CHANNELS``, with its row
    ``index``. With an ``augment_seed``, a scene also carries its augmentation ``draws`` (see
    ``draws.scene_draws``): ``photometric``, when given, changes it with them here, and
    ``GeometricChange`` the batch with them on the device. ``ComputeSetup.inputs`` turns a batch
    of them into the network's floats.

    A key is a row number, read at ``image_size`` in epoch 0, or a ``SceneKey`` from
    ``EpochSampler`` that says the size and the epoch. With a ``cache``, a scene is decoded once
    per size and read back from it afterwards (see ``decoded_cache``).
    """

    def __init__(
        self,
        table: pd.DataFrame,
        archive_path: Path,
        image_size: int,
        augment_seed: int | None = None,
        photometric: PhotometricChange | None = None,
        skip_bad: bool = False,
        cache: DecodedScenes | None = None,
    ) -> None:
        if photometric is not None and augment_seed is None:
            raise ValueError("a photometric change needs the augment_seed of its draws")
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
        self.augment_seed = augment_seed
        self.photometric = photometric
        self.skip_bad = skip_bad
        self.cache = cache

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

    def __getitem__(self, key: int | SceneKey) -> dict[str, Any] | None:
        """The scene; None for a bad scene when ``skip_bad`` (see ``collate_scenes``)."""
        index, size, epoch = key if isinstance(key, SceneKey) else (key, self.image_size, 0)
        try:
            bg, stored = self._read("bg", index, size, "RGB"), self._stored(index, size)
        except ImageError as error:
            if self.skip_bad:
                return None
            raise ImageError(f"scene {self.scenes[index].decode()}: {error}") from None
        images = (bg, stored.bg_fg)
        sample: dict[str, Any] = {"index": index}
        if self.augment_seed is not None:
            sample["draws"] = draws = scene_draws(self.augment_seed, epoch, index)
            if self.photometric is not None:
                images = self.photometric(images, draws)
        sample["scene"] = scene_tensor(*images, stored.depth, stored.mask)
        return sample

    def _stored(self, index: int, size: int) -> StoredScene:
        """The scene's own images (not its background): from the cache, else decoded."""
        if self.cache is not None and (stored := self.cache.get(index, size)) is not None:
            return stored
        stored = StoredScene(
            self._read("bg_fg", index, size, "RGB"),
            self._read("depth", index, size, "L"),
            self._read("mask", index, size, "L"),
        )
        if self.cache is not None:
            self.cache.put(index, size, stored)
        return stored


def collate_scenes(samples: list[dict[str, Any] | None]) -> dict[str, Any]:
    """A batch of the scenes that could be read: ``scenes`` (N x 8 x H x W, absent when none
    could), their ``index`` list, their N x len(draws.DRAW_NAMES) ``draws`` where they carry
    them, and ``skipped``: how many could not. One tensor a batch: the draws are a NumPy array and
    the rest plain numbers, pickled with it."""
    kept = [sample for sample in samples if sample is not None]
    batch: dict[str, Any] = {
        "index": [sample["index"] for sample in kept],
        "skipped": len(samples) - len(kept),
    }
    if kept:
        # default_collate stacks straight into shared memory inside a loader worker.
        batch["scenes"] = default_collate([sample["scene"] for sample in kept])
        if "draws" in kept[0]:
            batch["draws"] = np.stack([sample["draws"] for sample in kept])
    return batch
