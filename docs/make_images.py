"""Draw the README's pictures: training curves from a history CSV, predictions from predict sheets.

python docs/make_images.py training results/train/history.csv
python docs/make_images.py predictions OUT/a_sheet.png OUT/b_sheet.png --titles "a" "b"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from PIL import Image

IMAGES = Path(__file__).parent / "images"
PANELS = [  # (title, history columns)
    ("loss", ["train_loss", "val_loss"]),
    ("validation mask IoU", ["val_mask_iou"]),
    ("validation depth RMSE", ["val_depth_rmse"]),
]


def draw_training(history: Path, out: Path) -> None:
    frame = pd.read_csv(history)
    missing = sorted({c for _, cs in PANELS for c in cs} - set(frame.columns) - {"epoch"})
    if missing:
        raise SystemExit(f"{history}: no column {', '.join(missing)}; give the train stage's CSV")
    fig, axes = plt.subplots(1, len(PANELS), figsize=(9, 2.4), dpi=80)
    resized = frame["epoch"][frame["image_size"].diff().fillna(0) != 0]
    for ax, (title, columns) in zip(axes, PANELS, strict=True):
        for column in columns:
            ax.plot(frame["epoch"], frame[column], marker="o", markersize=3, label=column)
        for epoch in resized:  # progressive resizing: the loss steps where the size grows
            ax.axvline(epoch - 0.5, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        if len(columns) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)


def draw_predictions(sheets: list[Path], titles: list[str], out: Path) -> None:
    if len(titles) != len(sheets):
        raise SystemExit(f"{len(sheets)} sheets but {len(titles)} titles: give one title per sheet")
    images = [Image.open(sheet).convert("RGB") for sheet in sheets]
    width = max(image.width for image in images)
    fig, axes = plt.subplots(len(images), 1, figsize=(width / 80, 1.15 * len(images) * 224 / 80))
    for ax, image, title in zip([axes] if len(images) == 1 else axes, images, titles, strict=True):
        ax.imshow(image)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=80, pil_kwargs={"quality": 85})  # a JPEG: a quarter of the PNG


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    training = commands.add_parser("training", help="history CSV -> images/training.png")
    training.add_argument("history", type=Path)
    training.add_argument("--out", type=Path, default=IMAGES / "training.png")
    predictions = commands.add_parser("predictions", help="sheets -> images/predictions.jpg")
    predictions.add_argument("sheets", type=Path, nargs="+")
    predictions.add_argument("--titles", nargs="+", required=True)
    predictions.add_argument("--out", type=Path, default=IMAGES / "predictions.jpg")
    args = parser.parse_args()
    if args.command == "training":
        draw_training(args.history, args.out)
    else:
        draw_predictions(args.sheets, args.titles, args.out)


if __name__ == "__main__":
    main()
