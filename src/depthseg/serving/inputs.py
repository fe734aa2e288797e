"""The scene pairs a user asks to predict: files and folders, or a MODEST-layout folder or zip."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

from depthseg.data import layout
from depthseg.serving.images import ImageInputError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


@cache
def _open_zip(path: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)  # one handle per archive: its directory is read once


@dataclass(frozen=True)
class ImageRef:
    """An image file, or a member of a zip archive, read only when needed."""

    path: Path
    member: str | None = None

    def read(self) -> bytes:
        try:
            if self.member is None:
                return self.path.read_bytes()
            return _open_zip(self.path).read(self.member)
        except (OSError, KeyError, zipfile.BadZipFile) as error:
            raise ImageInputError(f"{self}: cannot read it ({error})") from None

    def __str__(self) -> str:
        return str(self.path) if self.member is None else f"{self.path}:{self.member}"


@dataclass(frozen=True)
class ScenePair:
    name: str
    bg: ImageRef
    bg_fg: ImageRef


def _image_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            return files
        raise ImageInputError(f"{path}: the folder holds no image ({', '.join(IMAGE_SUFFIXES)})")
    raise ImageInputError(f"{path}: no such file or folder")


def pairs_from_files(bg: Path, scenes: list[Path]) -> list[ScenePair]:
    """One background image and scenes shot in front of it (files, or folders of images)."""
    if not bg.is_file():
        raise ImageInputError(f"--bg {bg}: give the background as one image file")
    files = [file for scene in scenes for file in _image_files(scene)]
    names = [file.stem for file in files]
    if len(set(names)) != len(names):
        raise ImageInputError("two scene files share a name; their outputs would collide")
    return [ScenePair(file.stem, ImageRef(bg), ImageRef(file)) for file in files]


def _layout_pairs(names: list[str]) -> Iterator[tuple[str, str, str]]:
    """(scene, bg member, scene member) of every scene image among member ``names``."""
    present = set(names)
    for name in sorted(names):
        member = PurePosixPath(name)
        if member.parent.name != layout.SCENE_DIR or member.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        match = layout.SCENE_PATTERN.match(member.stem)
        if match is None:
            continue
        root = member.parent.parent
        bg = str(root / layout.bg_member(match["bg"]))
        if bg not in present:
            raise ImageInputError(f"{name}: its background {bg} is missing")
        yield member.stem, bg, name


def pairs_from_data(path: Path) -> list[ScenePair]:
    """Every scene of a MODEST-layout folder or zip (a top folder is allowed) with its bg."""
    if path.is_dir():
        names = [str(p.relative_to(path).as_posix()) for p in path.rglob("*") if p.is_file()]
        pairs = [
            ScenePair(scene, ImageRef(path / bg), ImageRef(path / member))
            for scene, bg, member in _layout_pairs(names)
        ]
    elif path.is_file() and zipfile.is_zipfile(path):
        names = _open_zip(path).namelist()
        pairs = [
            ScenePair(scene, ImageRef(path, bg), ImageRef(path, member))
            for scene, bg, member in _layout_pairs(names)
        ]
    else:
        raise ImageInputError(f"--data {path}: give a folder or .zip in the MODEST layout")
    if not pairs:
        raise ImageInputError(
            f"--data {path}: no scene found; expected {layout.SCENE_DIR}/bgNNN_fgNNN_NN.jpeg "
            f"beside {layout.BG_DIR}/bgNNN.jpeg"
        )
    return pairs
