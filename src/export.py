"""Export the trained model to ONNX, with the resizing and normalisation inside.

    python src/export.py                       # models/model.pt -> models/model.onnx
    python src/export.py --model models:/depthseg@champion --out champion.onnx

Then, with onnxruntime alone: see README "Use the model".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from depthseg.core.cli import run_stage, stage_parser
from depthseg.core.params import Params
from depthseg.core.paths import MODEL_WEIGHTS
from depthseg.serving.model_source import open_predictor
from depthseg.serving.onnx_export import export_onnx, onnx_predict


def export(params: Params, args: argparse.Namespace) -> None:
    network = open_predictor(args.model, params.limits, "cpu").network
    export_onnx(network, args.out)
    # Check the file against PyTorch on an odd size and batch the export never saw.
    generator = np.random.default_rng(0)
    bg = generator.integers(0, 256, (2, 150, 200, 3), dtype=np.uint8)
    bg_fg = generator.integers(0, 256, (2, 150, 200, 3), dtype=np.uint8)
    with torch.inference_mode():
        expected = network(torch.from_numpy(bg), torch.from_numpy(bg_fg))
    got = onnx_predict(args.out, bg, bg_fg, params.limits)
    difference = max(
        float(np.abs(onnx - torch_.numpy()).max())
        for onnx, torch_ in zip(got, expected, strict=True)
    )
    print(f"export: {args.out}; ONNX Runtime vs PyTorch, max abs difference {difference:.2e}")


def main() -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(MODEL_WEIGHTS), help="weights file or MLflow URI")
    parser.add_argument("--out", type=Path, default=Path("models/model.onnx"))
    run_stage(parser, export)


if __name__ == "__main__":
    main()
