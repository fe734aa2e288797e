"""Robustness of training recipes: the real pipeline on deliberately different built-in datasets.

For each setting (few or many rooms, other seeds, other figure sizes and lighting, another
palette) this makes a copy of the repository outside it with that `data.synthetic` section, runs
`dvc repro index` once, then one DVC experiment per recipe (`dvc exp run -n RECIPE -S ...`, train
and evaluate only), and prints test mask IoU, test depth RMSE and training time of each. Rows are
appended to a CSV (default docs/robustness.csv), so settings can be run one at a time:

    .venv/bin/python benchmarks/bench_robustness.py --settings rooms40 --recipes adam default
    .venv/bin/python benchmarks/bench_robustness.py --table      # the CSV as a markdown table

`default` is the repository's own params.yaml; `adam` is the baseline every candidate is compared
against (plain Adam at 1e-3, no schedule, 16 epochs at 64 px: no less training time).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["src", "dvc.yaml", "params.yaml", ".dvc/config", ".dvcignore", ".gitignore"]

#: data.synthetic of each setting; everything else as in params.yaml.
SETTINGS: dict[str, dict[str, Any]] = {
    "rooms40": {"backgrounds": 40, "foregrounds": 20, "placements": 4},
    "rooms200": {"backgrounds": 200, "foregrounds": 8, "placements": 2},
    "seed7": {"backgrounds": 100, "foregrounds": 8, "placements": 2, "seed": 7},
    "small-dim": {
        "backgrounds": 100, "foregrounds": 8, "placements": 2, "seed": 3,
        "figure_fraction": [0.15, 0.3], "light_gain": [0.5, 0.8],
    },
    "palette-bright": {
        "backgrounds": 100, "foregrounds": 8, "placements": 2, "seed": 5,
        "palette": "alternate", "light_gain": [1.1, 1.4],
    },
}  # fmt: skip

#: The baseline: plain Adam at 1e-3 and 64 px without augmentation. 16 epochs of the default's
#: `train.scenes_per_epoch` take longer than the default's 3 epochs at 64 px and 7 at 96 (an
#: epoch at 96 px costs about 1.8 at 64), so the baseline never has less time.
ADAM_BASELINE = {
    "train.optimizer.name": "adam",
    "train.optimizer.lr": 0.001,
    "train.optimizer.weight_decay": 0.0,
    "train.scheduler.name": "none",
    "train.epochs": 16,
    "train.image_sizes": [64],
    "train.augment.photometric": False,
    "train.augment.geometric": False,
}
#: Recipe name -> overrides of params.yaml ("default": none).
RECIPES: dict[str, dict[str, Any]] = {"adam": ADAM_BASELINE, "default": {}}
COLUMNS = ["setting", "recipe", "test_mask_iou", "test_depth_rmse", "train_seconds", "scenes"]


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed in {cwd}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def yaml_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).splitlines()[0]


def make_project(folder: Path, synthetic: dict[str, Any], env: dict[str, str]) -> None:
    """A copy of the repository with the setting's data, indexed and committed."""
    for name in PROJECT_FILES:
        source, target = REPO / name, folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["data"]["synthetic"].update(synthetic)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], folder, env)
    run(["dvc", "repro", "index"], folder, env)
    run(["git", "add", "-A"], folder, env)
    run(["git", "commit", "-qm", "setting"], folder, env)


def run_recipe(folder: Path, name: str, env: dict[str, str]) -> dict[str, Any]:
    overrides = [item for key, value in RECIPES[name].items()
                 for item in ("-S", f"{key}={yaml_value(value)}")]  # fmt: skip
    # `dvc exp run` leaves the last experiment's params in the workspace: start each recipe from
    # the setting's commit, or a recipe without overrides would rerun (and find cached) the last.
    run(["git", "checkout", "-q", "HEAD", "--", "."], folder, env)
    started = time.perf_counter()
    run(["dvc", "exp", "run", "-n", name, *overrides], folder, env)
    wall = time.perf_counter() - started
    evaluation = json.loads((folder / "results/evaluate/metrics.json").read_text())
    training = json.loads((folder / "results/train/metrics.json").read_text())
    print(f"  {name}: {wall:.0f} s for train + evaluate", flush=True)
    return {
        "recipe": name,
        "test_mask_iou": evaluation["mask_iou"],
        "test_depth_rmse": evaluation["depth_rmse"],
        "train_seconds": training["train_seconds"],
        "scenes": evaluation["scenes"],
    }


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    table = pd.DataFrame(rows, columns=COLUMNS)
    if path.is_file():
        table = pd.concat([pd.read_csv(path), table]).drop_duplicates(
            ["setting", "recipe"], keep="last"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, float_format="%.4f")


def markdown(path: Path) -> str:
    table = pd.read_csv(path)
    lines = ["| setting | recipe | test IoU | test RMSE | train s |", "|---|---|---|---|---|"]
    for row in table.itertuples():
        lines.append(
            f"| {row.setting} | {row.recipe} | {row.test_mask_iou:.4f} | "
            f"{row.test_depth_rmse:.4f} | {row.train_seconds:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--recipes", nargs="+", choices=RECIPES, default=["adam", "default"])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "robustness.csv")
    parser.add_argument("--table", action="store_true", help="print the CSV as markdown, run none")
    args = parser.parse_args()
    if args.table:
        print(markdown(args.out))
        return
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost",
    }  # fmt: skip
    for setting in args.settings:
        with tempfile.TemporaryDirectory(prefix=f"depthseg-{setting}-") as tmp:
            folder = Path(tmp)
            env["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
            # The copy runs its own package, not the editable install's, so edits made to the
            # repository while a long benchmark runs do not leak into it.
            env["PYTHONPATH"] = str(folder / "src")
            print(f"{setting}: {SETTINGS[setting]}", flush=True)
            make_project(folder, SETTINGS[setting], env)
            rows = [
                {"setting": setting, **run_recipe(folder, recipe, env)} for recipe in args.recipes
            ]
        append_rows(args.out, rows)
        for row in rows:
            print(
                f"{setting:>15} {row['recipe']:>18}: IoU {row['test_mask_iou']:.4f}  "
                f"RMSE {row['test_depth_rmse']:.4f}  train {row['train_seconds']:.0f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
