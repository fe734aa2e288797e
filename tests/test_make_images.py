"""docs/make_images.py draws the README's pictures from a run's outputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
from PIL import Image

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "docs" / "make_images.py"


def run(*args: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCRIPT), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_training_curves_are_drawn_from_a_history_and_a_wrong_file_is_named(tmp_path) -> None:
    history = tmp_path / "history.csv"
    pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "image_size": [64, 64, 96],
            "train_loss": [1.2, 0.5, 0.3],
            "val_loss": [0.7, 0.4, 0.3],
            "val_mask_iou": [0.6, 0.8, 0.9],
            "val_depth_rmse": [0.08, 0.06, 0.05],
        }
    ).to_csv(history, index=False)
    assert run("training", history, "--out", tmp_path / "t.png").returncode == 0
    assert Image.open(tmp_path / "t.png").size == (720, 192)  # 9 x 2.4 inches at 80 dpi
    history.write_text("epoch,loss\n1,0.5\n")
    failed = run("training", history, "--out", tmp_path / "u.png")
    assert failed.returncode != 0 and "no column" in failed.stderr and str(history) in failed.stderr


def test_prediction_sheets_are_stacked_with_one_title_each(tmp_path) -> None:
    sheet = tmp_path / "a_sheet.png"
    Image.fromarray(np.full((224, 672, 3), 200, np.uint8)).save(sheet)
    out = tmp_path / "p.jpg"
    assert run("predictions", sheet, sheet, "--titles", "one", "two", "--out", out).returncode == 0
    width, height = Image.open(out).size
    assert width == 672 and height > 2 * 224
    failed = run("predictions", sheet, sheet, "--titles", "one", "--out", tmp_path / "q.jpg")
    assert failed.returncode != 0 and "one title per sheet" in failed.stderr
