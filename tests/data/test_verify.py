"""index.verify: decode: truncated, corrupt and wrong-mode or wrong-size images are problems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import LIMITS, encode_jpeg

from depthseg.core.params import IndexParams, SplitParams
from depthseg.data import layout
from depthseg.data.indexing import IndexError_, build_index

SPLIT = SplitParams(train=0.5, val=0.25, test=0.25)


def corrupt_but_complete(data: bytes) -> bytes:
    """A quarter of the entropy-coded data gone, the end marker kept: Pillow decodes it without
    a word (into garbage), libjpeg warns."""
    return data[: len(data) * 3 // 4] + b"\xff\xd9"


BAD = {
    layout.scene_member("bg001_fg001_01"): lambda data: data[: len(data) // 2],
    layout.scene_member("bg002_fg001_02"): corrupt_but_complete,
    layout.mask_member("bg003_fg001_01_mask"): lambda _: encode_jpeg(
        np.zeros((64, 64, 3), np.uint8)  # RGB where a grey mask belongs
    ),
    layout.depth_member("bg004_fg001_02_depth_map"): lambda _: encode_jpeg(
        np.zeros((48, 48), np.uint8)  # another size
    ),
}
EXPECTED = {
    "bg001_fg001_01": "undecodable_image",
    "bg002_fg001_02": "corrupt_image_data",
    "bg003_fg001_01": "wrong_image_mode",
    "bg004_fg001_02": "wrong_image_size",
}


@pytest.fixture
def damaged_zip(make_release, make_zip, tmp_path: Path) -> Path:
    files = make_release(6, 1, 2, size=64)
    for member, damage in BAD.items():
        files[member] = damage(files[member])
    return make_zip(files, tmp_path / "modest.zip")


@pytest.mark.parametrize("workers", [1, 2])
def test_every_kind_of_bad_image_is_found_and_its_scene_skipped(
    damaged_zip: Path, workers: int
) -> None:
    params = IndexParams(split=SPLIT, on_problem="skip", verify="decode")
    table, problems = build_index(damaged_zip, params, LIMITS, workers)
    assert set(table["scene"]).isdisjoint(EXPECTED)
    assert len(table) == 12 - len(EXPECTED)
    for scene, kind in EXPECTED.items():
        assert any(example.startswith(scene) for example in problems.examples[kind]), kind
    assert (
        "premature end" in " ".join(problems.examples["corrupt_image_data"]).lower()
        or (problems.examples["corrupt_image_data"])
    )


def test_the_default_stop_names_the_bad_images(damaged_zip: Path) -> None:
    with pytest.raises(IndexError_, match=r"undecodable_image: 1 .*bg001_fg001_01"):
        build_index(damaged_zip, IndexParams(split=SPLIT, verify="decode"), LIMITS)
    table, problems = build_index(
        damaged_zip, IndexParams(split=SPLIT), LIMITS
    )  # verify off: unseen
    assert len(table) == 12 and not problems


def test_the_real_scenes_of_modest_mini_pass(modest_archive: Path) -> None:
    params = IndexParams(split=SplitParams(train=0.5, val=0.25, test=0.25), verify="decode")
    table, problems = build_index(modest_archive, params, LIMITS, workers=2)
    assert len(table) == 12 and not problems
