from __future__ import annotations

import pickle
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import LIMITS
from PIL import Image
from torch.utils.data import DataLoader

from depthseg.core.params import AugmentParams, IndexParams
from depthseg.data import layout
from depthseg.data.augmentation import GeometricChange, PhotometricChange
from depthseg.data.dataset import SceneDataset, collate_scenes
from depthseg.data.decoded_cache import DecodedScenes
from depthseg.data.draws import scene_draws
from depthseg.data.image_header import ImageError
from depthseg.data.indexing import build_index
from depthseg.data.sampling import EpochSampler, SceneKey
from depthseg.data.transforms import SCENE_CHANNELS, normalised, part, unit_floats

Files = dict[str, bytes]
MakeRelease = Callable[..., Files]
MakeZip = Callable[..., Path]
Sample = dict[str, torch.Tensor]

#: The figure is painted at 240 on rooms darker than 130: brighter than this is the figure.
FIGURE_THRESHOLD = 185 / 255


@pytest.fixture
def index_release(
    make_zip: MakeZip, tmp_path: Path
) -> Callable[[Files], tuple[pd.DataFrame, Path]]:
    """Write a release as a stored zip and index it."""

    def build(files: Files) -> tuple[pd.DataFrame, Path]:
        archive = make_zip(files, tmp_path / "raw" / "modest.zip")
        table, _ = build_index(archive, IndexParams(), LIMITS)
        return table, archive

    return build


@pytest.fixture
def modest_index(modest_archive: Path) -> pd.DataFrame:
    return build_index(modest_archive, IndexParams(), LIMITS)[0]


def _pixels(image: torch.Tensor) -> np.ndarray:
    """3xHxW in [0, 1] -> HxWx3."""
    return image.numpy().transpose(1, 2, 0)


def _bg_fg_pixels(sample: Sample) -> np.ndarray:
    return _pixels(sample["bg_fg"])


def _bg_pixels(sample: Sample) -> np.ndarray:
    return _pixels(sample["bg"])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _same(first: Sample, second: Sample) -> bool:
    return all(torch.equal(first[key], second[key]) for key in first)


class AugmentedScenes:
    """Scenes as a training step sees them: the dataset's photometric change in the loader,
    then the geometric change of the batch; each image as floats in [0, 1], by name."""

    def __init__(
        self, params: AugmentParams, table: pd.DataFrame, archive: Path, size: int, seed: int
    ) -> None:
        photometric = PhotometricChange(params) if params.photometric else None
        self.dataset = SceneDataset(table, archive, size, seed, photometric)
        self.geometric = GeometricChange(params) if params.geometric else None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | SceneKey) -> Sample:
        sample = self.dataset[key]
        scenes = unit_floats(sample["scene"][None])
        if self.geometric is not None:
            self.geometric(scenes, sample["draws"][None])
        return {name: part(scenes[0], name) for name in SCENE_CHANNELS}


def _augmented(params: AugmentParams) -> Callable[..., AugmentedScenes]:
    def make(table: pd.DataFrame, archive: Path, size: int, seed: int = 0) -> AugmentedScenes:
        return AugmentedScenes(params, table, archive, size, seed)

    return make


NOTHING = AugmentParams(geometric=False, photometric=False)


GEOMETRIC = AugmentParams(geometric=True, photometric=False, flip_p=1.0, shift=0.1, scale=0.15)
PHOTOMETRIC = AugmentParams(photometric=True, geometric=False, photometric_p=1.0)
EVERYTHING = AugmentParams(geometric=True, photometric=True, photometric_p=1.0)


# ---------------------------------------------------------------------------------------------
# Real scenes


@pytest.mark.parametrize("size", [64, 96])
def test_sample_shapes_and_ranges(
    modest_index: pd.DataFrame, modest_archive: Path, size: int
) -> None:
    dataset = SceneDataset(modest_index, modest_archive, size)
    assert len(dataset) == 12
    for index in (0, 7, 11):
        sample = dataset[index]
        assert sample["index"] == index and "draws" not in sample
        scene = sample["scene"]
        assert scene.shape == (8, size, size) and scene.dtype == torch.uint8
        assert set(part(scene, "mask").unique().tolist()) == {0, 1}
        depth = part(scene, "depth")
        assert 0 <= depth.min() < depth.max() <= 255


def test_scenes_are_the_release_pixels_normalised_with_its_statistics_in_batches(
    modest_index: pd.DataFrame, modest_archive: Path, modest_mini: Path
) -> None:
    index = 7
    sample = SceneDataset(modest_index, modest_archive, 224)[index]
    row = modest_index.iloc[index]
    for kind, mean, std in [
        ("bg", layout.BG_MEAN, layout.BG_STD),
        ("bg_fg", layout.BG_FG_MEAN, layout.BG_FG_STD),
    ]:
        pixels = np.asarray(Image.open(modest_mini / row[kind]).convert("RGB"))
        image = part(sample["scene"], kind)
        np.testing.assert_array_equal(image.numpy(), pixels.transpose(2, 0, 1))
        expected = (pixels / 255.0 - np.array(mean)) / np.array(std)
        batch = normalised(part(unit_floats(sample["scene"][None]), kind), mean, std)
        assert batch.dtype == torch.float32
        np.testing.assert_allclose(batch[0].numpy(), expected.transpose(2, 0, 1), atol=1e-5)
    mask = np.asarray(Image.open(modest_mini / row["mask"]).convert("L"))
    np.testing.assert_array_equal(
        part(sample["scene"], "mask")[0].numpy(), (mask > 127).astype(np.uint8)
    )


# ---------------------------------------------------------------------------------------------
# Corrupt images


@pytest.mark.parametrize("kind", ["bg", "bg_fg", "mask", "depth"])
def test_corrupt_image_names_the_member(
    make_release: MakeRelease,
    index_release: Callable[[Files], tuple[pd.DataFrame, Path]],
    kind: str,
) -> None:
    files = make_release(3)
    scene = "bg002_fg001_01"
    member = {
        "bg": layout.bg_member("bg002"),
        "bg_fg": layout.scene_member(scene),
        "mask": layout.mask_member(f"{scene}_mask"),
        "depth": layout.depth_member(f"{scene}_depth_map"),
    }[kind]
    files[member] = files[member][: len(files[member]) // 2]
    table, archive = index_release(files)
    dataset = SceneDataset(table, archive, 32)
    corrupt = int(np.flatnonzero(table["scene"] == scene)[0])
    with pytest.raises(ImageError) as caught:
        dataset[corrupt]
    assert member in str(caught.value)
    assert str(archive) in str(caught.value)
    dataset[(corrupt + 1) % len(dataset)]  # the other scenes still load


# ---------------------------------------------------------------------------------------------
# Augmentation


def test_geometric_augmentation_keeps_labels_aligned(
    make_release: MakeRelease, index_release: Callable[[Files], tuple[pd.DataFrame, Path]]
) -> None:
    table, archive = index_release(make_release(2, 1, 4, size=64))
    plain = _augmented(NOTHING)(table, archive, 64)
    augmented = _augmented(GEOMETRIC)(table, archive, 64)
    for index in range(len(table)):
        before, after = plain[index], augmented[index]
        figure = _bg_fg_pixels(after).mean(axis=2) > FIGURE_THRESHOLD
        mask = after["mask"][0].numpy() > 0
        assert mask.sum() > 0.1 * mask.size
        assert _iou(figure, mask) > 0.9, index
        # The figure was painted left of centre: the flip moved it (and its mask) right.
        assert _iou(mask, before["mask"][0].numpy() > 0) < 0.5
        assert np.nonzero(mask)[1].mean() > 64 / 2
        # The depth ramp rose to the right; flipped with the image, it now falls.
        depth = after["depth"][0].numpy().astype(float)
        assert depth[:, :8].mean() > depth[:, -8:].mean()


def test_flip_and_affine_are_drawn_independently(
    make_release: MakeRelease, index_release: Callable[[Files], tuple[pd.DataFrame, Path]]
) -> None:
    table, archive = index_release(make_release(1, size=64))
    repeated = pd.concat([table] * 40, ignore_index=True)  # one scene, 40 draws
    plain_mask = _augmented(NOTHING)(table, archive, 64)[0]["mask"][0]
    params = AugmentParams(geometric=True, photometric=False, flip_p=0.5, shift=0.2, scale=0.2)
    dataset = _augmented(params)(repeated, archive, 64)

    def outcome(index: int) -> str:
        mask = dataset[index]["mask"][0]
        if torch.equal(mask, plain_mask):
            return "none"
        if torch.equal(mask, plain_mask.flip(-1)):
            return "flip"
        right = torch.nonzero(mask)[:, 1].float().mean() > 64 / 2
        return "flip+affine" if right else "affine"

    outcomes = Counter(outcome(index) for index in range(len(dataset)))
    assert set(outcomes) == {"none", "flip", "affine", "flip+affine"}, outcomes


def test_photometric_augmentation_changes_both_inputs_alike_and_no_label(
    make_release: MakeRelease, index_release: Callable[[Files], tuple[pd.DataFrame, Path]]
) -> None:
    files = make_release(3, 1, 2)
    for line in files[layout.FILE_MAP].decode().splitlines():
        bg, scene, *_ = line.split("\t")
        files[layout.scene_member(scene)] = files[layout.bg_member(bg)]
    table, archive = index_release(files)
    plain = _augmented(NOTHING)(table, archive, 32)
    augmented = _augmented(PHOTOMETRIC)(table, archive, 32)
    for index in range(len(table)):
        before, after = plain[index], augmented[index]
        np.testing.assert_allclose(_bg_pixels(after), _bg_fg_pixels(after), atol=1e-5)
        assert np.abs(_bg_pixels(after) - _bg_pixels(before)).max() > 2 / 255
        assert torch.equal(after["mask"], before["mask"])
        assert torch.equal(after["depth"], before["depth"])


def test_augmentation_depends_on_seed_epoch_and_index(
    make_release: MakeRelease, index_release: Callable[[Files], tuple[pd.DataFrame, Path]]
) -> None:
    table, archive = index_release(make_release(2, 1, 2))
    make = _augmented(EVERYTHING)
    dataset = make(table, archive, 32)
    first = [dataset[index] for index in range(len(table))]
    again = make(table, archive, 32)  # a fresh copy, as a worker process has
    assert all(_same(first[index], again[index]) for index in range(len(table)))
    assert all(_same(first[index], dataset[index]) for index in range(len(table)))
    next_epoch = [dataset[SceneKey(index, 32, 1)] for index in range(len(table))]
    assert not any(_same(first[index], next_epoch[index]) for index in range(len(table)))
    other_seed = make(table, archive, 32, seed=1)
    assert not any(_same(first[index], other_seed[index]) for index in range(len(table)))


def test_dataset_survives_pickling(modest_index: pd.DataFrame, modest_archive: Path) -> None:
    dataset = _augmented(EVERYTHING)(modest_index, modest_archive, 64).dataset
    key = SceneKey(3, 64, 2)
    expected = dataset[key]
    copy = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(copy[key]["scene"], expected["scene"])


def _batches(scenes: AugmentedScenes, workers: int) -> list[torch.Tensor]:
    """The augmented float batches of epoch 3, read with ``workers`` loader processes."""
    sampler = EpochSampler(len(scenes), 64, shuffle=False)
    sampler.set_epoch(3, 64)
    loader = DataLoader(
        scenes.dataset, batch_size=5, sampler=sampler, num_workers=workers,
        collate_fn=collate_scenes,
    )  # fmt: skip
    batches = []
    for batch in loader:
        floats = unit_floats(batch["scenes"])
        assert scenes.geometric is not None
        batches.append(scenes.geometric(floats, batch["draws"]))
    return batches


def test_a_batch_carries_each_scenes_own_draws_from_the_workers(
    modest_index: pd.DataFrame, modest_archive: Path
) -> None:
    """The worker draws once for both halves of the augmentation: the training process gets
    the draws with the scenes, and a dataset without augmentation sends none."""
    augmented = _augmented(EVERYTHING)(modest_index, modest_archive, 64, seed=4).dataset
    plain = SceneDataset(modest_index, modest_archive, 64)
    sampler = EpochSampler(len(augmented), 64, shuffle=True, seed=0)
    sampler.set_epoch(3, 64)
    for dataset, carries in ((augmented, True), (plain, False)):
        loader = DataLoader(
            dataset, batch_size=5, sampler=sampler, num_workers=2, collate_fn=collate_scenes
        )
        for batch in loader:
            assert ("draws" in batch) is carries
            if carries:
                expected = np.stack([scene_draws(4, 3, index) for index in batch["index"]])
                np.testing.assert_array_equal(batch["draws"], expected)


def test_a_photometric_change_without_its_draws_is_refused(
    modest_index: pd.DataFrame, modest_archive: Path
) -> None:
    with pytest.raises(ValueError, match="augment_seed"):
        SceneDataset(modest_index, modest_archive, 64, photometric=PhotometricChange(EVERYTHING))


def test_loader_workers_give_the_same_batches(
    modest_index: pd.DataFrame, modest_archive: Path
) -> None:
    scenes = _augmented(EVERYTHING)(modest_index, modest_archive, 64)
    in_process = _batches(scenes, workers=0)
    with_workers = _batches(scenes, workers=2)
    assert [len(batch) for batch in in_process] == [5, 5, 2]
    assert len(with_workers) == len(in_process)
    assert all(torch.equal(a, b) for a, b in zip(in_process, with_workers, strict=True))
    # The same scenes as one at a time: a scene's draws do not depend on its batch.
    first = scenes[SceneKey(0, 64, 3)]
    assert all(torch.equal(first[name], part(in_process[0][0], name)) for name in first)


def test_each_background_is_decoded_once_per_size(
    make_release: MakeRelease, index_release: Callable[[Files], tuple[pd.DataFrame, Path]]
) -> None:
    table, archive = index_release(make_release(3, 2, 2))
    dataset = SceneDataset(table, archive, 32)
    uncached = SceneDataset(table, archive, 32)
    uncached.backgrounds.capacity = 0
    for index in range(len(table)):
        assert torch.equal(dataset[index]["scene"], uncached[index]["scene"])
        assert torch.equal(
            dataset[SceneKey(index, 64, 0)]["scene"], uncached[SceneKey(index, 64, 0)]["scene"]
        )
    assert len(dataset.backgrounds.images) == 3 * 2  # three backgrounds at two sizes
    assert len(uncached.backgrounds.images) == 0


def test_later_epochs_read_what_loader_workers_stored_not_the_archive(
    make_release: MakeRelease,
    index_release: Callable[[Files], tuple[pd.DataFrame, Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table, archive = index_release(make_release(3, 2, 2))
    photometric = PhotometricChange(PHOTOMETRIC)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cache = DecodedScenes.in_temporary_folder(len(table), [32, 48], "depthseg-decoded-test")
    cached = SceneDataset(table, archive, 32, 0, photometric, cache=cache)
    plain = SceneDataset(table, archive, 32, 0, photometric)
    keys = [SceneKey(index, size, 1) for size in (32, 48) for index in range(len(table))]
    loader = DataLoader(  # a batch per size, one from each worker
        cached, batch_size=len(table), sampler=keys, num_workers=2, collate_fn=collate_scenes
    )
    for batch, size in zip(loader, (32, 48), strict=True):
        decoded = [plain[SceneKey(index, size, 1)]["scene"] for index in batch["index"]]
        assert torch.equal(batch["scenes"], torch.stack(decoded))
    # Epochs 2 and 3 (other draws) as decoding gives them, before the archive goes.
    second, third = ([key._replace(epoch=epoch) for key in keys] for epoch in (2, 3))
    expected = {key: plain[key]["scene"] for key in second + third}
    # This process reads what the workers stored (and decodes the backgrounds, kept apart).
    assert all(torch.equal(cached[key]["scene"], expected[key]) for key in second)
    archive.write_bytes(b"")
    with pytest.raises(ImageError, match="no member at byte 0"):
        SceneDataset(table, archive, 32)[0]
    assert all(torch.equal(cached[key]["scene"], expected[key]) for key in third)


def test_index_columns_hold_no_python_objects(
    modest_index: pd.DataFrame, modest_archive: Path
) -> None:
    """Forked workers would copy pages of Python objects as they touch reference counts."""
    dataset = SceneDataset(modest_index, modest_archive, 64)
    columns = [dataset.scenes, *dataset.names.values(), *dataset.ranges.values()]
    assert all(column.dtype != object for column in columns)
    assert dataset.scenes[0].decode() == modest_index["scene"].iloc[0]
