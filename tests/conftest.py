"""Shared fixtures: the real modest-mini scenes, and small releases built in the test.

A release is handled as a mapping ``member name -> bytes`` in the MODEST layout, so a test can
drop, corrupt or add a member before writing it out as a folder or a zip.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from repro_project import make_repro_project
from servers import POSTGRES_BIN, Postgres, model_server, postgres_server

from depthseg.core.params import IndexParams, SplitParams
from depthseg.core.params_file import load_params
from depthseg.data import layout
from depthseg.data.archive import pack_folder
from depthseg.data.indexing import build_index
from depthseg.models.dsresnet import DSResNet
from depthseg.models.masknet import MaskNet

Files = dict[str, bytes]

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEST_MINI = REPO_ROOT.parent / "shared" / "modest-mini"
MODEST_MINI_SCENES = 12
#: params.yaml's values: tests change only what they test on top of these.
DEFAULT_PARAMS = load_params(REPO_ROOT / "params.yaml")
LIMITS = DEFAULT_PARAMS.limits

# The suite runs on every core at once (pytest-xdist, see pyproject.toml), mostly tiny models,
# many in subprocesses: one thread each, or their OpenMP threads spin-wait against each other.
os.environ.setdefault("OMP_NUM_THREADS", "1")  # the processes tests start
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # this one, torch already imported


# ---------------------------------------------------------------------------------------------
# Images and releases


def encode_jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def encode_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def figure_box(placement: int, size: int) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the pasted figure: left of centre, so a flip moves it."""
    width, height = size * 3 // 8, size // 2
    x = size // 8 + (placement - 1) % 4
    y = size // 4
    return x, y, width, height


def background_pixels(bg_index: int, size: int) -> np.ndarray:
    """A dark, asymmetric room (values below 130), different for every background."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.array([30 + 7 * bg_index % 40, 50, 70 - 5 * bg_index % 30], np.float32)
    pixels = base + 40 * cols[..., None] + 20 * rows[..., None]
    return pixels.clip(0, 255).astype(np.uint8)


def depth_pixels(size: int) -> np.ndarray:
    """Depth that grows from left to right: a horizontal flip reverses it."""
    ramp = np.linspace(20, 235, size, dtype=np.float32)
    return np.broadcast_to(ramp, (size, size)).astype(np.uint8)


def scene_names(backgrounds: Iterable[int], foregrounds: int = 1, placements: int = 1) -> list[str]:
    return [
        layout.scene_name(layout.bg_name(bg), layout.fg_name(fg), placement)
        for bg in backgrounds
        for fg in range(1, foregrounds + 1)
        for placement in range(1, placements + 1)
    ]


def release_files(
    backgrounds: int = 3,
    foregrounds: int = 1,
    placements: int = 1,
    *,
    size: int = 32,
    scenes: Sequence[str] | None = None,
) -> Files:
    """Every member of a small release of backgrounds x foregrounds x placements scenes (or of
    ``scenes``): a bright figure on a dark room, its mask 255 exactly where the figure is, and
    a left-to-right depth ramp."""
    if scenes is None:
        scenes = scene_names(range(1, backgrounds + 1), foregrounds, placements)
    files: Files = {}
    file_map: list[str] = []
    bboxes: list[str] = []
    for scene in scenes:
        match = layout.SCENE_PATTERN.match(scene)
        assert match is not None, scene
        bg, fg, placement = match["bg"], match["fg"], int(match["placement"])
        room = background_pixels(int(bg[2:]), size)
        x, y, width, height = figure_box(placement, size)
        composite = room.copy()
        composite[y : y + height, x : x + width] = 240
        mask = np.zeros((size, size), np.uint8)
        mask[y : y + height, x : x + width] = 255
        figure = np.full((height, width, 4), 240, np.uint8)
        files[layout.bg_member(bg)] = encode_jpeg(room)
        files[layout.fg_member(fg)] = encode_png(figure)
        files[layout.fg_mask_member(fg)] = encode_png(np.full((height, width), 255, np.uint8))
        files[layout.scene_member(scene)] = encode_jpeg(composite)
        files[layout.mask_member(f"{scene}_mask")] = encode_jpeg(mask)
        files[layout.depth_member(f"{scene}_depth_map")] = encode_jpeg(depth_pixels(size))
        file_map.append(f"{bg}\t{scene}\t{scene}_mask\t{scene}_depth_map\n")
        bboxes.append(f"{scene}.jpeg\t{x}\t{y}\t{width}\t{height}\n")
    files[layout.FILE_MAP] = "".join(file_map).encode()
    files[layout.BBOX_FILE] = "".join(bboxes).encode()
    return files


def folder_files(folder: Path) -> Files:
    """The layout files of a release folder (its README and the like left out)."""
    names = [name for name in (layout.FILE_MAP, layout.BBOX_FILE) if (folder / name).is_file()]
    for sub in layout.FOLDERS:
        names += [f"{sub}/{path.name}" for path in (folder / sub).iterdir() if path.is_file()]
    return {name: (folder / name).read_bytes() for name in names}


def write_folder(files: Files, folder: Path) -> Path:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def write_zip(
    files: Files, path: Path, *, top: str = "", compression: int = zipfile.ZIP_STORED
) -> Path:
    """A zip of ``files``, each under the prefix ``top`` (e.g. 'modest/')."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(top + name, data)
    return path


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def modest_mini() -> Path:
    """The twelve real MODEST scenes of ../shared/modest-mini, read in place (never modify)."""
    if not (MODEST_MINI / layout.FILE_MAP).is_file():
        pytest.skip(
            "../shared/modest-mini not found: real-data tests need the shared folder beside "
            "the clone"
        )
    return MODEST_MINI


@pytest.fixture(scope="session")
def modest_mini_files(modest_mini: Path) -> Files:
    return folder_files(modest_mini)


@pytest.fixture
def modest_archive(modest_mini: Path, tmp_path: Path) -> Path:
    """modest-mini packed by fetch's own code into a stored zip, as data/raw/modest.zip is."""
    dest = tmp_path / "raw" / "modest.zip"
    pack_folder(modest_mini, dest, LIMITS)
    return dest


@pytest.fixture
def make_release() -> Callable[..., Files]:
    """``make_release(backgrounds, foregrounds, placements, size=32, scenes=None)``: the members
    of a small release."""
    return release_files


@pytest.fixture
def make_zip() -> Callable[..., Path]:
    """``make_zip(files, path, top='', compression=ZIP_STORED)``: write a zip of a release."""
    return write_zip


@pytest.fixture
def make_folder() -> Callable[[Files, Path], Path]:
    """``make_folder(files, folder)``: write a release as a folder."""
    return write_folder


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A tiny repository copy after `dvc repro` with its results committed, and the environment
    it ran in. Tests that change it work on a ``clone_project`` of it."""
    project = tmp_path_factory.mktemp("project")
    return project, make_repro_project(project)


@pytest.fixture(scope="session")
def tiny_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    """An indexed release of 8 backgrounds x 2 figures x 2 placements at 64 px (half for train)."""
    folder = tmp_path_factory.mktemp("tiny-release")
    archive = write_zip(release_files(8, 2, 2, size=64), folder / "modest.zip")
    split = SplitParams(train=0.5, val=0.25, test=0.25)
    table, _ = build_index(archive, IndexParams(split=split), LIMITS)
    return table, archive


def _save_untrained(folder: Path, network: torch.nn.Module, card: dict) -> tuple[Path, Path]:
    weights, card_file = folder / "model.pt", folder / "model.json"
    torch.save(network.state_dict(), weights)
    card_file.write_text(json.dumps({**card, "run_id": "none"}))
    return weights, card_file


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(weights, card) of a width-0.125 DSResNet kept at 64 px."""
    torch.manual_seed(0)
    card = {"width": 0.125, "image_size": 64}
    return _save_untrained(tmp_path_factory.mktemp("model"), DSResNet(0.125), card)


@pytest.fixture(scope="session")
def saved_mask_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(weights, card) of a width-0.25 MaskNet (no depth output) kept at 64 px, mirror averaged."""
    torch.manual_seed(0)
    card = {"model": "masknet", "outputs": ["mask"], "width": 0.25, "image_size": 64}
    folder = tmp_path_factory.mktemp("mask-model")
    return _save_untrained(folder, MaskNet(0.25), {**card, "mirror_average": True})


@pytest.fixture(scope="session")
def champion_server(pipeline) -> Iterator[tuple[str, int]]:
    """`mlflow models serve` of the tiny project's champion: (base URL, process group)."""
    project, env = pipeline
    with model_server(project, "models:/depthseg@champion", env) as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL 15 server on a free loopback port, for the whole session; each test
    makes its own database (``postgres.create_database(name)``)."""
    if not (POSTGRES_BIN / "pg_ctl").is_file():
        pytest.skip(f"PostgreSQL 15 not found in {POSTGRES_BIN}: the PostgreSQL tests need it")
    with postgres_server() as server:
        yield server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules of slow tests first: the workers share them out from the start, and the quick
    modules fill the gaps at the end, so no worker is left alone with a long one."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
