"""The LR range test as a job: run it on the indexed data, write the curve, record it in MLflow."""

from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib
import pandas as pd

from depthseg.core.files import replaced_atomically, write_json
from depthseg.core.params import Params, parse_params
from depthseg.core.params_edit import set_param
from depthseg.core.params_file import apply_override
from depthseg.core.paths import INDEX_FILE, LR_FIND_RESULTS
from depthseg.data.indexing import read_index
from depthseg.engine.assembly import build_run
from depthseg.engine.loop import Trainer
from depthseg.engine.lr_range import RangeTestResult, range_test
from depthseg.tracking import service as tracking

matplotlib.use("Agg")

LR_KEY = "train.optimizer.lr"


def lr_find(params: Params, params_file: Path, apply: bool = False) -> RangeTestResult:
    """Run the test with the train stage's model, loss, optimizer and data; write
    results/lr_find/ (curve.csv, curve.png, summary.json); with ``apply`` set the suggested lr
    in ``params_file``."""
    table, archive_path = read_index(INDEX_FILE)
    raw = params.model_dump()
    apply_override(raw, "train.resume", False)
    params = parse_params(raw, "lr_find params")
    with tempfile.TemporaryDirectory(prefix="depthseg-lr-find-") as checkpoints:
        trainer = Trainer(build_run(params, table, archive_path, Path(checkpoints)))
        result = range_test(trainer, params.lr_find)
    LR_FIND_RESULTS.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(LR_FIND_RESULTS / "curve.csv") as partial:
        result.curve.to_csv(partial, index=False, float_format="%.6g")
    _plot(result, LR_FIND_RESULTS / "curve.png")
    write_json(LR_FIND_RESULTS / "summary.json", result.summary())
    with tracking.start_run(
        params, run_name="lr range test", tags={"depthseg_job": "lr_find"}
    ) as run:
        run.log_series({name: result.curve[name].tolist() for name in _SERIES})
        run.log_metrics({k: float(v) for k, v in result.summary().items()})
        for name in ("curve.csv", "curve.png", "summary.json"):
            run.log_artifact(LR_FIND_RESULTS / name, "lr_find")
    if apply:
        set_param(params_file, LR_KEY, float(f"{result.suggested_lr:.2g}"))
    return result


_SERIES = ("lr", "loss", "smoothed_loss")


def _plot(result: RangeTestResult, path: Path) -> None:
    from matplotlib import pyplot

    curve: pd.DataFrame = result.curve
    figure, axes = pyplot.subplots(figsize=(8, 5))
    axes.plot(curve["lr"], curve["loss"], alpha=0.3, label="loss")
    axes.plot(curve["lr"], curve["smoothed_loss"], label="smoothed loss")
    axes.axvline(result.suggested_lr, color="red", linestyle="--", label="suggested lr")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    axes.set_title(f"LR range test: suggested lr {result.suggested_lr:.2g}")
    axes.legend()
    figure.tight_layout()
    with replaced_atomically(path) as partial:
        figure.savefig(partial, dpi=100, format="png")
    pyplot.close(figure)
