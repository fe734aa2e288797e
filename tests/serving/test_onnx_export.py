"""The ONNX export runs in ONNX Runtime alone and matches PyTorch on sizes it never saw.

Both shrink the input in uint8, each rounding to whole grey levels its own way: on random
noise (the worst case) the outputs then differ by about 2e-4; a wrong graph differs by 0.1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from conftest import LIMITS

from depthseg.serving.onnx_export import INPUT_NAMES, export_onnx, onnx_predict
from depthseg.serving.predictor import load_network

#: Rounding to grey levels differs between the two resizes (see above).
TOLERANCE = 1e-3


def test_onnx_runtime_matches_pytorch_at_any_batch_and_size(saved_model, tmp_path: Path) -> None:
    network = load_network(*saved_model)
    path = tmp_path / "model.onnx"
    export_onnx(network, path)
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == INPUT_NAMES
    dims = [d.dim_param or d.dim_value for d in graph.input[1].type.tensor_type.shape.dim]
    assert all(isinstance(d, str) for d in dims[:3]) and dims[3] == 3, dims  # free N, H, W
    rng = np.random.default_rng(0)
    worst = 0.0
    for batch, height, width in [(1, 224, 224), (3, 77, 131), (2, 64, 64)]:
        bg = rng.integers(0, 256, (batch, height + 5, width, 3), dtype=np.uint8)
        bg_fg = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
        got = onnx_predict(path, bg, bg_fg, LIMITS)
        with torch.inference_mode():
            expected = network(torch.from_numpy(bg), torch.from_numpy(bg_fg))
        for onnx_output, torch_output in zip(got, expected, strict=True):
            assert onnx_output.shape == (batch, height, width)
            worst = max(worst, float(np.abs(onnx_output - torch_output.numpy()).max()))
    print(f"ONNX Runtime vs PyTorch: max abs difference {worst:.2e}")
    assert worst < TOLERANCE


def test_the_export_script_writes_the_file_and_reports_its_difference(saved_model, tmp_path):
    out = tmp_path / "exported.onnx"
    script = Path(__file__).resolve().parents[2] / "src/export.py"
    command = [sys.executable, str(script), "--model", str(saved_model[0]), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    difference = float(result.stdout.strip().rsplit(" ", 1)[1])
    assert out.is_file() and difference < TOLERANCE
