"""Predict the person's mask and the scene's depth for image pairs, at the images' own size.

python src/predict.py --bg room.jpg --scene shots/ --out predictions/
python src/predict.py --data ../shared/modest-mini --out predictions/
python src/predict.py --model models:/depthseg@champion --data release.zip --out predictions/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from depthseg.core.cli import run_stage, stage_parser
from depthseg.core.params import Params
from depthseg.core.paths import MODEL_CARD, MODEL_WEIGHTS
from depthseg.serving.images import ImageInputError
from depthseg.serving.inputs import pairs_from_data, pairs_from_files
from depthseg.serving.model_source import open_predictor
from depthseg.serving.predict_files import OUTPUTS, predict_to_folder


def predict(params: Params, args: argparse.Namespace) -> None:
    limits = params.limits
    if args.bg is not None and not args.scene:
        raise ImageInputError("--bg needs at least one --scene")
    if args.data:
        pairs = pairs_from_data(args.data, limits)
    else:
        pairs = pairs_from_files(args.bg, args.scene)
    predictor = open_predictor(args.model, limits, args.device)
    rate = predict_to_folder(predictor, pairs, args.out, args.batch_size, limits)
    print(f"predict: {len(pairs)} scenes to {args.out} ({rate:.1f} scenes/s)")


def main() -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.epilog = (
        "Images over params.yaml's limits (limits.image_pixels, image_bytes...) are refused "
        "before they are decoded. Writes per scene: "
        + "; ".join(f"NAME_{suffix}.png: {what}" for suffix, what in OUTPUTS.items())
    )
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--data", type=Path, help="a MODEST-layout folder or zip")
    inputs.add_argument("--bg", type=Path, help="the background image (use with --scene)")
    parser.add_argument(
        "--scene", type=Path, action="append", default=[], help="scene image or folder; repeat"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the outputs")
    parser.add_argument(
        "--model",
        default=str(MODEL_WEIGHTS),
        help=f"weights file (its card beside it, as {MODEL_CARD}) or an MLflow model URI, "
        "e.g. models:/depthseg@champion or runs:/RUN_ID/model",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    run_stage(parser, predict)


if __name__ == "__main__":
    main()
