"""Scene pairs from files and folders, or from a MODEST-layout folder or zip."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import LIMITS

from depthseg.serving.inputs import ImageInputError, pairs_from_data, pairs_from_files


def test_a_modest_folder_gives_each_scene_with_its_own_background(modest_mini: Path) -> None:
    pairs = pairs_from_data(modest_mini, LIMITS)
    assert len(pairs) == len(list((modest_mini / "bg_fg").glob("*.jpeg"))) == 12
    for pair in pairs:
        assert pair.bg.path.name == f"{pair.name.split('_')[0]}.jpeg"
        assert pair.bg_fg.read(LIMITS) == (modest_mini / "bg_fg" / f"{pair.name}.jpeg").read_bytes()


def test_a_zip_with_a_top_folder_gives_the_same_scenes(modest_mini: Path, tmp_path: Path) -> None:
    archive = tmp_path / "release.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as packed:
        for file in sorted(modest_mini.rglob("*")):
            if file.is_file():
                packed.write(file, f"modest/{file.relative_to(modest_mini)}")
    from_zip = pairs_from_data(archive, LIMITS)
    from_folder = pairs_from_data(modest_mini, LIMITS)
    assert [p.name for p in from_zip] == [p.name for p in from_folder]
    assert [p.bg.read(LIMITS) for p in from_zip] == [p.bg.read(LIMITS) for p in from_folder]
    assert str(from_zip[0].bg_fg).startswith(f"{archive}:modest/bg_fg/")


def test_a_scene_without_its_background_is_named(modest_mini: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(modest_mini, tmp_path / "copy")
    (copy / "bg" / "bg001.jpeg").unlink()
    with pytest.raises(ImageInputError, match=r"bg001_fg001_01\.jpeg: its background bg/bg001"):
        pairs_from_data(copy, LIMITS)
    with pytest.raises(ImageInputError, match="no scene found"):
        pairs_from_data(copy / "bg", LIMITS)


def test_files_and_folders_of_scenes_share_one_background(tmp_path: Path) -> None:
    for name in ("room.jpg", "shots/a.png", "shots/b.jpeg", "shots/notes.txt", "c.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    pairs = pairs_from_files(tmp_path / "room.jpg", [tmp_path / "shots", tmp_path / "c.jpg"])
    assert [p.name for p in pairs] == ["a", "b", "c"]
    assert {p.bg.path for p in pairs} == {tmp_path / "room.jpg"}
    with pytest.raises(ImageInputError, match=r"c\.jpg and .*c\.jpg would both be written as c_"):
        pairs_from_files(tmp_path / "room.jpg", [tmp_path / "c.jpg", tmp_path / "c.jpg"])
    with pytest.raises(ImageInputError, match="one image file"):
        pairs_from_files(tmp_path / "shots", [tmp_path / "c.jpg"])
    with pytest.raises(ImageInputError, match=r"missing\.png: no such file"):
        pairs_from_files(tmp_path / "room.jpg", [tmp_path / "missing.png"])
