"""Hostile input at every door, fed to the real entry point: `predict.py`, the fetch and index
stages, `train.py` and `tune.py`, and the served champion over HTTP.

Each must end with one clear line naming the thing, its size and the limit (HTTP 400 with one
line and no traceback from the server), with memory growth within a stated bound (measured in
a subprocess, or as the server's own peak), and with nothing written or changed. The README's
faults table lists the same cases.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import encode_jpeg, encode_png, release_files, write_folder, write_zip
from hostile_images import png_bomb
from PIL import Image
from repro_project import clone_project
from servers import peak_memory_mb

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
#: Memory a refused input may add to a run on a real scene: a fraction of what decoding it
#: would take (the bomb below is 432 MB as RGB pixels).
GROWTH_BOUND_MB = 60
#: A wrapper that runs a command and prints the peak resident memory of it, its only child.
_MEASURED = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def scene_images(tmp_path: Path) -> tuple[Path, Path]:
    """A background and a scene of 224 px, as files."""
    rng = np.random.default_rng(0)
    bg, scene = tmp_path / "room.jpeg", tmp_path / "shot.jpeg"
    bg.write_bytes(encode_jpeg(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)))
    scene.write_bytes(encode_jpeg(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)))
    return bg, scene


def measured(command: list[str], cwd: Path, env: dict[str, str] | None = None):
    """(completed process, its peak resident memory in MB)."""
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED, *command],
        cwd=cwd, env=env, capture_output=True, text=True,
    )  # fmt: skip
    *lines, peak = result.stderr.rstrip("\n").split("\n")
    result.stderr = "\n".join(lines)
    return result, int(peak) / 1024


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line a refused run ends with."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# ---------------------------------------------------------------------------------------------
# predict.py


@pytest.fixture(scope="module")
def predict_baseline(saved_model, tmp_path_factory) -> float:
    """Peak memory of predict.py on one real-sized scene."""
    folder = tmp_path_factory.mktemp("baseline")
    bg, scene = scene_images(folder)
    command = [sys.executable, "src/predict.py", "--bg", str(bg), "--scene", str(scene),
               "--out", str(folder / "out"), "--model", str(saved_model[0])]  # fmt: skip
    result, peak = measured(command, REPO)
    assert result.returncode == 0, result.stderr
    return peak


def bad_scene_zip(path: Path, scene: bytes, compression: int) -> Path:
    bg = encode_jpeg(np.zeros((64, 64, 3), np.uint8))
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("bg/bg001.jpeg", bg)
        archive.writestr("bg_fg/bg001_fg001_01.jpeg", scene)
    return path


PREDICT_CASES = {
    "png_bomb": (
        lambda folder: ["--scene", str(write(folder / "bomb.png", png_bomb()))],
        [],
        r"bomb\.png \(12,000 x 12,000\) is 144,000,000 pixels, over the limit of 50,000,000 "
        r"pixels \(limits\.image_pixels\)",
    ),
    "jpeg_that_claims_a_huge_frame": (
        lambda folder: ["--scene", str(write(folder / "claim.jpg", huge_jpeg_header()))],
        [],
        r"claim\.jpg \(60,000 x 60,000\) is 3,600,000,000 pixels, over the limit",
    ),
    "too_many_bytes": (
        lambda folder: ["--scene", str(scene_images(folder)[1])],
        ["-S", "limits.image_bytes=1000"],
        r"room\.jpeg is [\d,]+ bytes, over the limit of 1,000 bytes \(limits\.image_bytes\)",
    ),
    "too_many_scans": (
        lambda folder: ["--scene", str(write(folder / "scans.jpg", progressive_jpeg()))],
        ["-S", "limits.jpeg_scans=5"],
        r"scans\.jpg \(progressive JPEG\) is \d+ scans, over the limit of 5 scans",
    ),
    "not_an_image": (
        lambda folder: ["--scene", str(write(folder / "notes.png", b"%!PS-Adobe-3.0 EPSF-3.0\n"))],
        [],
        r"notes\.png: not an image of an accepted format \(JPEG, PNG, WEBP, BMP, TIFF\)",
    ),
}


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def huge_jpeg_header() -> bytes:
    """A real JPEG whose frame header says 60,000 x 60,000."""
    data = bytearray(encode_jpeg(np.zeros((16, 16, 3), np.uint8)))
    frame = data.find(b"\xff\xc0")
    data[frame + 5 : frame + 9] = (60_000).to_bytes(2, "big") * 2
    return bytes(data)


def progressive_jpeg() -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG", progressive=True)
    return buffer.getvalue()


@pytest.mark.parametrize("case", PREDICT_CASES, ids=str)
def test_predict_refuses_each_bad_scene_with_one_line_and_writes_nothing(
    case: str, saved_model, predict_baseline: float, tmp_path: Path
) -> None:
    arguments, overrides, message = PREDICT_CASES[case]
    bg, _ = scene_images(tmp_path)
    out = tmp_path / "out"
    command = [sys.executable, "src/predict.py", "--bg", str(bg), *arguments(tmp_path),
               "--out", str(out), "--model", str(saved_model[0]), *overrides]  # fmt: skip
    started = time.monotonic()
    result, peak = measured(command, REPO)
    assert re.search(message, error_line(result)), result.stderr
    assert time.monotonic() - started < 60
    assert peak - predict_baseline < GROWTH_BOUND_MB, (peak, predict_baseline)
    assert not out.exists()


@pytest.mark.parametrize(
    ("scene", "message"),
    [
        (b"\0" * 100_000_000, r"is 100,000,000 bytes, over the limit of 67,108,864 bytes"),
        (
            b"\0" * 30_000_000,
            r"deflates from [\d,]+ to 30,000,000 bytes \([\d,]+x\), over the limit of 20x",
        ),
    ],
    ids=["declared_too_large", "compressed_too_far"],
)
def test_predict_refuses_a_zip_bomb_before_inflating_it(
    scene: bytes, message: str, saved_model, predict_baseline: float, tmp_path: Path
) -> None:
    archive = bad_scene_zip(tmp_path / "release.zip", scene, zipfile.ZIP_DEFLATED)
    out = tmp_path / "out"
    command = [sys.executable, "src/predict.py", "--data", str(archive), "--out", str(out),
               "--model", str(saved_model[0])]  # fmt: skip
    result, peak = measured(command, REPO)
    line = error_line(result)
    assert "bg_fg/bg001_fg001_01.jpeg" in line and re.search(message, line), line
    assert peak - predict_baseline < GROWTH_BOUND_MB, (peak, predict_baseline)
    assert not out.exists()


def test_predict_refuses_two_scenes_that_would_write_the_same_files(
    saved_model, tmp_path: Path
) -> None:
    files = release_files(1, size=32)
    files["bg_fg/bg001_fg001_01.png"] = encode_png(np.zeros((32, 32, 3), np.uint8))
    folder = write_folder(files, tmp_path / "release")
    out = tmp_path / "out"
    command = [sys.executable, "src/predict.py", "--data", str(folder), "--out", str(out),
               "--model", str(saved_model[0])]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    line = error_line(result)
    assert "bg001_fg001_01.jpeg and " in line and "bg001_fg001_01.png would both be written" in line
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# The fetch and index stages, on a dataset from elsewhere


@pytest.fixture
def project(pipeline, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the tiny project, its archive and index in place."""
    source, env = pipeline
    return clone_project(source, tmp_path / "project"), env


def digests(project: Path) -> dict[str, str]:
    """What the stages wrote before: it must be the same after a refusal."""
    return {
        str(path.relative_to(project)): hashlib.md5(path.read_bytes()).hexdigest()
        for folder in ("data", "results")
        for path in sorted((project / folder).rglob("*"))
        if path.is_file()
    }


def stage(project: Path, env: dict[str, str], script: str, *overrides: str):
    command = [sys.executable, f"src/{script}"]
    for override in overrides:
        command += ["-S", override]
    return measured(command, project, env)


def deflated_zip(files: dict[str, bytes], path: Path) -> Path:
    return write_zip(files, path, compression=zipfile.ZIP_DEFLATED)


def lying_sizes(path: Path, size: int) -> Path:
    """``path`` with every image's central-directory sizes raised to ``size``: a zip that
    declares far more than it holds, at an ordinary compression ratio."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_length = int.from_bytes(data[at + 28 : at + 30], "little")
        name = bytes(data[at + 46 : at + 46 + name_length])
        if name.endswith(b".jpeg"):
            data[at + 20 : at + 28] = size.to_bytes(4, "little") * 2
        at = data.find(b"PK\x01\x02", at + 46)
    path.write_bytes(bytes(data))
    return path


def linked_folder(tmp_path: Path) -> Path:
    """A release whose bg_fg_mask/ is a link to a private folder beside it."""
    folder = write_folder(release_files(3, size=32), tmp_path / "linked")
    private = tmp_path / "private"
    (folder / "bg_fg_mask").rename(private)
    (private / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (folder / "bg_fg_mask").symlink_to(private, target_is_directory=True)
    return folder


def bomb_in_release(tmp_path: Path) -> Path:
    files = release_files(3, size=32)
    files["bg_fg_mask/bg002_fg001_01_mask.jpeg"] = png_bomb(20_000, 10_000)
    return write_folder(files, tmp_path / "bombed")


FETCH_CASES = {
    "zip_bomb": (
        lambda tmp: deflated_zip(
            {**release_files(2, size=32), "bg/bg002.jpeg": bytes(300_000_000)}, tmp / "bomb.zip"
        ),
        (),
        r"bomb\.zip:bg/bg002\.jpeg is 300,000,000 bytes, over the limit of 268,435,456 bytes",
    ),
    "many_files_deflated_far": (
        lambda tmp: deflated_zip(
            {**release_files(2, size=32), **{f"bg/x{i}.jpeg": bytes(2_000_000) for i in range(50)}},
            tmp / "many.zip",
        ),
        (),
        r"bg/x\d+\.jpeg: deflates from [\d,]+ to 2,000,000 bytes \([\d,]+x\), over the "
        r"limit of 20x",
    ),
    "more_than_the_disk_holds": (
        lambda tmp: lying_sizes(
            write_zip(release_files(8, size=32), tmp / "lies.zip"), 0xFFFF_FF00
        ),
        ("limits.member_bytes=5000000000",),
        r"lies\.zip: its files come to [\d,]+ bytes, more than the [\d,]+ bytes free",
    ),
    "a_linked_folder": (
        linked_folder,
        (),
        r"linked/bg_fg_mask leads to .*/private, outside the dataset folder",
    ),
    "too_many_files": (
        lambda tmp: write_folder(release_files(4, size=32), tmp / "crowded"),
        ("limits.members=10",),
        r"crowded is \d+ files, over the limit of 10 files \(limits\.members\)",
    ),
    "a_huge_file_map": (
        lambda tmp: deflated_zip(
            {
                **release_files(2, size=32),
                "file_map.txt": b"bg001\tbg001_fg001_01\tm\td\n" * 3_000_000,
            },
            tmp / "text.zip",
        ),
        (),
        r"file_map\.txt: deflates from [\d,]+ to [\d,]+ bytes|file_map\.txt is [\d,]+ bytes, over",
    ),
}


@pytest.mark.parametrize("case", FETCH_CASES, ids=str)
def test_fetch_refuses_a_hostile_dataset_before_writing_anything(
    case: str, project, tmp_path
) -> None:
    copy, env = project
    make, overrides, message = FETCH_CASES[case]
    source = make(tmp_path)
    before = digests(copy)
    result, peak = stage(
        copy, env, "fetch.py", "data.source=local", f"data.path={source}", *overrides
    )
    line = error_line(result)
    assert re.search(message, line), line
    assert peak < 400, peak  # the whole stage, Python and its imports included
    assert digests(copy) == before
    assert not list((copy / "data/raw").glob("*.partial"))


def test_fetch_copies_only_the_images_and_texts_of_the_layout(project, tmp_path: Path) -> None:
    copy, env = project
    files = {
        **release_files(2, size=32),
        "bg/id_rsa": b"secret",
        "bg/.git/config": b"x",
        "notes.txt": b"x",
    }
    folder = write_folder(files, tmp_path / "release")
    result, _ = stage(copy, env, "fetch.py", "data.source=local", f"data.path={folder}")
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(copy / "data/raw/modest.zip") as packed:
        names = set(packed.namelist())
    assert names == {
        name for name in files if name.endswith((".jpeg", ".png", ".txt")) and name != "notes.txt"
    }


@pytest.mark.parametrize(
    ("replace", "problem"),
    [
        (
            lambda files: {"bg_fg_mask/bg002_fg001_01_mask.jpeg": png_bomb(20_000, 10_000)},
            "oversized_image: 1",
        ),
        (
            lambda files: {"bg_fg_mask/bg002_fg001_01_mask.jpeg": b"<html>not found</html>"},
            "not_an_image: 1",
        ),
    ],
    ids=["png_bomb_as_a_mask", "a_page_as_a_mask"],
)
def test_index_refuses_an_image_it_must_not_decode(
    replace, problem: str, project, tmp_path
) -> None:
    copy, env = project
    files = release_files(3, size=32)
    folder = write_folder({**files, **replace(files)}, tmp_path / "release")
    result, _ = stage(copy, env, "fetch.py", "data.source=local", f"data.path={folder}")
    assert result.returncode == 0, result.stderr
    before = digests(copy)
    result, peak = stage(copy, env, "index.py")
    assert result.returncode == 2, result.stderr
    assert problem in result.stderr and "bg002_fg001_01" in result.stderr
    assert "Traceback" not in result.stderr
    assert peak < 400, peak
    assert digests(copy) == before


# ---------------------------------------------------------------------------------------------
# Secrets


def test_a_password_in_the_tracking_uri_is_never_printed(project) -> None:
    copy, env = project
    env = {**env, "MLFLOW_TRACKING_URI": "http://alice:S3cretPW@127.0.0.1:9"}
    result = subprocess.run(
        [sys.executable, "src/train.py"], cwd=copy, env=env, capture_output=True, text=True
    )
    line = error_line(result)
    assert "127.0.0.1:9 is unreachable" in line
    assert "S3cretPW" not in result.stdout + result.stderr


def test_a_password_in_the_optuna_storage_is_never_printed(project) -> None:
    copy, env = project
    storage = "postgresql+psycopg://optuna:S3cretPW@127.0.0.1:9/optuna"
    command = [sys.executable, "src/tune.py", "--storage", storage, "--n-trials", "1"]
    result = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True)
    line = error_line(result)
    assert (
        "cannot open the Optuna storage postgresql+psycopg://optuna:***@127.0.0.1:9/optuna" in line
    )
    assert "S3cretPW" not in result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# The served champion


def post(url: str, rows: list[list[bytes]]) -> requests.Response:
    data = [[base64.b64encode(image).decode() for image in row] for row in rows]
    body = {"dataframe_split": {"columns": ["bg", "bg_fg"], "data": data}}
    return requests.post(f"{url}/invocations", json=body, timeout=120)


def refusal(reply: requests.Response) -> str:
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and "stack_trace" not in body, body
    assert "\n" not in body["message"] and "Traceback" not in reply.text, body
    return body["message"]


def test_the_server_answers_hostile_requests_400_with_one_line_and_keeps_serving(
    champion_server,
) -> None:
    url, group = champion_server
    rng = np.random.default_rng(0)
    scene = encode_jpeg(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
    for _ in range(3):  # warm: the memory a real request takes
        assert post(url, [[scene, scene]]).status_code == 200
    before = peak_memory_mb(group)
    big = encode_png(np.zeros((4000, 4000), np.uint8))
    cases = {
        r"row 0 bg_fg \(12,000 x 12,000\) is 144,000,000 pixels, over the limit of 50,000,000": [
            [scene, png_bomb()]
        ],
        r"the request is 17 rows, over the limit of 16 rows \(limits\.request_rows\)": [
            [scene, scene]
        ]
        * 17,
        r"the request's images is 128,000,000 pixels, over the limit of 100,000,000 pixels": [
            [big, big]
        ]
        * 4,
        r"row 1 bg: not an image of an accepted format": [[scene, scene], [b"GIF89a", scene]],
    }
    for message, rows in cases.items():
        assert re.search(message, refusal(post(url, rows)))
    broken = requests.post(
        f"{url}/invocations",
        json={"dataframe_split": {"columns": ["bg", "bg_fg"], "data": [["%%%", "x"]]}},
        timeout=60,
    )
    assert broken.status_code == 400 and "Traceback" not in broken.text
    assert peak_memory_mb(group) - before < GROWTH_BOUND_MB
    assert post(url, [[scene, scene]]).status_code == 200
