"""The LR range test on the real training loop, a tiny release and a tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depthseg.core.params import LRFindParams, parse_params
from depthseg.engine.assembly import build_run
from depthseg.engine.compute import TrainingError
from depthseg.engine.loop import Trainer
from depthseg.engine.lr_range import lr_at, range_test, steepest_descent


def trainer(tiny_index, folder: Path) -> Trainer:
    table, archive = tiny_index
    params = parse_params(
        {
            "model": {"width": 0.125},
            "train": {"batch_size": 4, "workers": 0, "epochs": 1, "scenes_per_epoch": None},
        }
    )
    return Trainer(build_run(params, table, archive, folder))


def test_the_lr_grows_exponentially_from_start_to_end() -> None:
    config = LRFindParams(start_lr=1e-7, end_lr=100.0, iterations=10)
    lrs = [lr_at(i, config) for i in range(10)]
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] == pytest.approx(100.0)
    assert np.allclose(np.diff(np.log10(lrs)), 1.0)


def test_the_suggestion_is_where_the_loss_falls_fastest() -> None:
    lrs = np.logspace(-6, 0, 61)
    # A loss that falls fastest at lr 1e-3 (a logistic step in log lr), then blows up.
    losses = 2 - 1 / (1 + np.exp(-4 * (np.log10(lrs) + 3))) + (lrs > 0.3) * 5
    assert steepest_descent(lrs, losses) == pytest.approx(1e-3)
    with pytest.raises(TrainingError, match="too few iterations"):
        steepest_descent(lrs[:4], losses[:4])


def test_a_range_ending_far_too_high_stops_when_the_loss_diverges(
    tiny_index, tmp_path: Path
) -> None:
    config = LRFindParams(start_lr=1e-4, end_lr=100.0, iterations=60, image_size=32)
    result = range_test(trainer(tiny_index, tmp_path), config)
    curve = result.curve
    assert result.diverged and len(curve) < config.iterations
    assert curve["lr"].is_monotonic_increasing
    assert curve["iteration"].tolist() == list(range(1, len(curve) + 1))
    assert config.start_lr <= result.suggested_lr <= curve["lr"].max()
    assert result.summary()["iterations_run"] == len(curve)


def test_a_gentle_range_runs_every_iteration_and_cycles_the_data(
    tiny_index, tmp_path: Path
) -> None:
    # 16 training scenes in batches of 4: 30 iterations take several passes over the data.
    config = LRFindParams(start_lr=1e-7, end_lr=1e-5, iterations=30, image_size=32)
    result = range_test(trainer(tiny_index, tmp_path), config)
    assert not result.diverged and len(result.curve) == 30
    assert result.curve["lr"].iloc[-1] == pytest.approx(1e-5)
