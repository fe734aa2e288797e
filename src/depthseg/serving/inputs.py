"""The scene pairs a user asks to predict: files and folders, or a MODEST-layout folder or zip.

Nothing is read before its size is known to be within ``limits``: a file's size and a zip
member's declared size and compression are checked first, and no more than the limit is read.
"""

from __future__ import annotations

import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

from depthseg.core.params import LimitsParams
from depthseg.data import layout
from depthseg.data.archive import ArchiveError, open_zip, read_member
from depthseg.data.image_header import ImageTooLarge
from depthseg.serving.images import ImageInputError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


@cache
def _zip(path: Path, limits: LimitsParams) -> zipfile.ZipFile:
    return open_zip(path, limits)  # one handle per archive: its directory is read once


@dataclass(frozen=True)
class ImageRef:
    """An image file, or a member of a zip archive, read only when needed."""

    path: Path
    member: str | None = None

    def read(self, limits: LimitsParams) -> bytes:
        """The encoded image, refused before it is read if it is over ``limits.image_bytes``."""
        try:
            if self.member is not None:
                archive = _zip(self.path, limits)
                return read_member(
                    archive, archive.getinfo(self.member), self.path, limits, "image_bytes"
                )
            if refusal := limits.exceeded("image_bytes", self.path.stat().st_size, str(self)):
                raise ImageTooLarge(refusal)
            with open(self.path, "rb") as handle:
                data = handle.read(limits.image_bytes + 1)
            if refusal := limits.exceeded("image_bytes", len(data), str(self)):  # it grew
                raise ImageTooLarge(refusal)
            return data
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


def unique_names(pairs: list[ScenePair]) -> list[ScenePair]:
    """``pairs``, refused if two would write outputs of the same name (``X.jpeg`` and
    ``X.png``, or one scene in two top folders of a zip): the last would overwrite the first."""
    sources: dict[str, list[str]] = defaultdict(list)
    for pair in pairs:
        sources[pair.name].append(str(pair.bg_fg))
    clashes = [(name, found) for name, found in sources.items() if len(found) > 1]
    if clashes:
        name, found = clashes[0]
        raise ImageInputError(
            f"{found[0]} and {found[1]} would both be written as {name}_*.png (and "
            f"{len(clashes) - 1} more such clashes): rename one, or predict them separately"
        )
    return pairs


def pairs_from_files(bg: Path, scenes: list[Path]) -> list[ScenePair]:
    """One background image and scenes shot in front of it (files, or folders of images)."""
    if not bg.is_file():
        raise ImageInputError(f"--bg {bg}: give the background as one image file")
    files = [file for scene in scenes for file in _image_files(scene)]
    return unique_names([ScenePair(file.stem, ImageRef(bg), ImageRef(file)) for file in files])


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


def pairs_from_data(path: Path, limits: LimitsParams) -> list[ScenePair]:
    """Every scene of a MODEST-layout folder or zip (a top folder is allowed) with its bg."""
    if path.is_dir():
        names = [str(p.relative_to(path).as_posix()) for p in path.rglob("*") if p.is_file()]
        pairs = [
            ScenePair(scene, ImageRef(path / bg), ImageRef(path / member))
            for scene, bg, member in _layout_pairs(names)
        ]
    elif path.is_file() and zipfile.is_zipfile(path):
        try:
            names = _zip(path, limits).namelist()
        except ArchiveError as error:
            raise ImageInputError(f"--data {error}") from None
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
    return unique_names(pairs)
