"""`python src/predict.py` on real MODEST scenes and on a user's own files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from depthseg.serving.predict_files import OUTPUTS

REPO = Path(__file__).resolve().parents[2]


def predict(*args: str | Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "src/predict.py"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True)


def read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_every_modest_scene_gets_its_mask_and_depth(saved_model, modest_mini, tmp_path) -> None:
    weights, _ = saved_model
    result = predict("--data", modest_mini, "--out", tmp_path / "out", "--model", weights)
    assert result.returncode == 0, result.stderr
    assert "predict: 12 scenes" in result.stdout
    scenes = sorted(p.stem for p in (modest_mini / "bg_fg").glob("*.jpeg"))
    expected = {f"{scene}_{suffix}.png" for scene in scenes for suffix in OUTPUTS}
    assert {p.name for p in (tmp_path / "out").iterdir()} == expected
    depth = read(tmp_path / "out" / f"{scenes[0]}_depth.png")
    mask = read(tmp_path / "out" / f"{scenes[0]}_mask.png")
    assert depth.dtype == np.uint16 and depth.shape == (224, 224)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    assert read(tmp_path / "out" / f"{scenes[0]}_sheet.png").shape == (224, 672, 3)


def test_a_background_and_a_folder_of_photos_of_any_size(saved_model, tmp_path) -> None:
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "room.jpg"), rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    (tmp_path / "shots").mkdir()
    for name, size in (("a.png", (300, 400)), ("b.jpg", (123, 77))):
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / "shots" / name), pixels)
    out = tmp_path / "out"
    result = predict("--bg", tmp_path / "room.jpg", "--scene", tmp_path / "shots", "--out", out,
                     "--model", saved_model[0])  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert read(out / "a_depth.png").shape == (300, 400)
    assert read(out / "b_mask.png").shape == (123, 77)


def test_bad_input_exits_with_one_line_naming_it(saved_model, tmp_path) -> None:
    result = predict("--data", tmp_path / "nowhere", "--out", tmp_path / "out",
                     "--model", saved_model[0])  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --data {tmp_path / 'nowhere'}: give a folder or .zip in the MODEST layout"
    ]
    assert not (tmp_path / "out").exists()
