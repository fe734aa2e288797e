from __future__ import annotations

import pickle
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
from depthseg.data.dataset import SceneDataset
from depthseg.data.image_header import ImageError
from depthseg.data.indexing import build_index
from depthseg.data.sampling import EpochSampler, SceneKey
from depthseg.data.transforms import build_augmentation, normalised

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
    """3xHxW uint8 -> HxWx3 in [0, 1]."""
    return image.numpy().transpose(1, 2, 0) / 255.0


def _bg_fg_pixels(sample: Sample) -> np.ndarray:
    return _pixels(sample["bg_fg"])


def _bg_pixels(sample: Sample) -> np.ndarray:
    return _pixels(sample["bg"])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _same(first: Sample, second: Sample) -> bool:
    return all(torch.equal(first[key], second[key]) for key in first)


def _augmented(params: AugmentParams) -> Callable[..., SceneDataset]:
    def make(table: pd.DataFrame, archive: Path, size: int, seed: int = 0) -> SceneDataset:
        return SceneDataset(table, archive, size, build_augmentation(params), seed=seed)

    return make


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
        assert {key: tuple(value.shape) for key, value in sample.items()} == {
            "index": (),
            "bg": (3, size, size),
            "bg_fg": (3, size, size),
            "mask": (1, size, size),
            "depth": (1, size, size),
        }
        assert int(sample["index"]) == index
        assert all(sample[key].dtype == torch.uint8 for key in ("bg", "bg_fg", "mask", "depth"))
        assert set(sample["mask"].unique().tolist()) == {0, 1}
        assert 0 <= sample["depth"].min() < sample["depth"].max() <= 255


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
        np.testing.assert_array_equal(sample[kind].numpy(), pixels.transpose(2, 0, 1))
        expected = (pixels / 255.0 - np.array(mean)) / np.array(std)
        batch = normalised(sample[kind][None], mean, std)
        assert batch.dtype == torch.float32
        np.testing.assert_allclose(batch[0].numpy(), expected.transpose(2, 0, 1), atol=1e-5)
    mask = np.asarray(Image.open(modest_mini / row["mask"]).convert("L"))
    np.testing.assert_array_equal(sample["mask"][0].numpy(), (mask > 127).astype(np.uint8))


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
    plain = SceneDataset(table, archive, 64)
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
    plain_mask = SceneDataset(table, archive, 64)[0]["mask"][0]
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
    plain = SceneDataset(table, archive, 32)
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
    dataset = _augmented(EVERYTHING)(modest_index, modest_archive, 64)
    key = SceneKey(3, 64, 2)
    expected = dataset[key]
    copy = pickle.loads(pickle.dumps(dataset))
    assert _same(copy[key], expected)


def _batches(dataset: SceneDataset, workers: int) -> list[Sample]:
    sampler = EpochSampler(len(dataset), 64, shuffle=False)
    sampler.set_epoch(3, 64)
    loader = DataLoader(dataset, batch_size=5, sampler=sampler, num_workers=workers)
    return list(loader)


def test_loader_workers_give_the_same_batches(
    modest_index: pd.DataFrame, modest_archive: Path
) -> None:
    dataset = _augmented(EVERYTHING)(modest_index, modest_archive, 64)
    in_process = _batches(dataset, workers=0)
    with_workers = _batches(dataset, workers=2)
    assert [len(batch["bg"]) for batch in in_process] == [5, 5, 2]
    assert len(with_workers) == len(in_process)
    assert all(_same(a, b) for a, b in zip(in_process, with_workers, strict=True))


def test_each_background_is_decoded_once_per_size(
    make_release: MakeRelease, index_release: Callable[[Files], tuple[pd.DataFrame, Path]]
) -> None:
    table, archive = index_release(make_release(3, 2, 2))
    dataset = SceneDataset(table, archive, 32)
    uncached = SceneDataset(table, archive, 32)
    uncached.backgrounds.capacity = 0
    for index in range(len(table)):
        assert torch.equal(dataset[index]["bg"], uncached[index]["bg"])
        assert torch.equal(
            dataset[SceneKey(index, 64, 0)]["bg"], uncached[SceneKey(index, 64, 0)]["bg"]
        )
    assert len(dataset.backgrounds.images) == 3 * 2  # three backgrounds at two sizes
    assert len(uncached.backgrounds.images) == 0


def test_index_columns_hold_no_python_objects(
    modest_index: pd.DataFrame, modest_archive: Path
) -> None:
    """Forked workers would copy pages of Python objects as they touch reference counts."""
    dataset = SceneDataset(modest_index, modest_archive, 64)
    columns = [dataset.scenes, *dataset.names.values(), *dataset.ranges.values()]
    assert all(column.dtype != object for column in columns)
    assert dataset.scenes[0].decode() == modest_index["scene"].iloc[0]
