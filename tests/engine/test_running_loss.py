from __future__ import annotations

import math

import pytest
import torch

from depthseg.engine.compute import TrainingError
from depthseg.engine.running_loss import RunningLoss


def test_the_mean_is_per_sample_over_the_epoch() -> None:
    running = RunningLoss(torch.device("cpu"), epoch=1, check_every=3)
    checked = [
        running.add(torch.tensor(loss), samples)
        for loss, samples in [(1.0, 4), (2.0, 4), (4.0, 2), (0.5, 2)]
    ]
    assert checked == [False, False, True, False]  # the third step completed a window
    assert running.mean() == pytest.approx((4 + 8 + 8 + 1) / 12)
    assert running.steps == 4 and running.samples == 12


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_bad_loss_is_caught_at_the_next_check_naming_its_step(bad: float) -> None:
    running = RunningLoss(torch.device("cpu"), epoch=2, check_every=5)
    losses = [1.0] * 6 + [bad] + [1.0, bad, 1.0]
    for loss in losses[:9]:  # not caught before its window is complete
        running.add(torch.tensor(loss), 4)
    with pytest.raises(TrainingError, match=rf"became {bad} at step 7 of epoch 2: lower"):
        running.add(torch.tensor(losses[9]), 4)  # step 10 completes the window


def test_a_bad_loss_in_the_last_unchecked_steps_is_caught_by_the_mean() -> None:
    running = RunningLoss(torch.device("cpu"), epoch=1, check_every=25)
    for loss in (1.0, 1.0, math.nan):
        running.add(torch.tensor(loss), 4)
    with pytest.raises(TrainingError, match="at step 3 of epoch 1"):
        running.mean()
