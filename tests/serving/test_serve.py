"""`mlflow models serve` of the champion answers with the masks `predict.py` writes."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import requests
from PIL import Image


def decoded_png(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def test_the_served_champion_answers_a_real_scene_as_predict_does(
    pipeline, champion_server, modest_mini: Path, tmp_path: Path
) -> None:
    project, env = pipeline
    url, _ = champion_server
    bg, scene = modest_mini / "bg/bg003.jpeg", modest_mini / "bg_fg/bg003_fg003_01.jpeg"
    images = [base64.b64encode(path.read_bytes()).decode() for path in (bg, scene)]
    body = {"dataframe_split": {"columns": ["bg", "bg_fg"], "data": [images]}}
    reply = requests.post(f"{url}/invocations", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    [answer] = reply.json()["predictions"]
    out = tmp_path / "out"
    command = [sys.executable, "src/predict.py", "--bg", str(bg), "--scene", str(scene),
               "--out", str(out), "--model", "models:/depthseg@champion"]  # fmt: skip
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    written = {
        name: cv2.imread(str(out / f"{scene.stem}_{name}.png"), cv2.IMREAD_UNCHANGED)
        for name in ("mask", "depth")
    }
    served = {name: decoded_png(answer[name]) for name in ("mask", "depth")}
    assert served["mask"].shape == written["mask"].shape == (224, 224)
    np.testing.assert_array_equal(served["mask"], written["mask"])
    assert served["depth"].dtype == np.uint16
    assert np.abs(served["depth"].astype(int) - written["depth"].astype(int)).max() <= 2
