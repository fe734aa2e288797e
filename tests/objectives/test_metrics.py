from __future__ import annotations

import math

import pytest
import torch

from depthseg.objectives import metrics as metrics_module
from depthseg.objectives.metrics import (
    MASK_METRIC_NAMES,
    METRIC_NAMES,
    SegDepthMetrics,
    headline,
    score,
)


def _images(*images: list[list[float]]) -> torch.Tensor:
    return torch.tensor(images, dtype=torch.float64).unsqueeze(1)


# Two 2x2 images, worked by hand below.
MASK_PROB = _images([[0.9, 0.6], [0.4, 0.1]], [[0.8, 0.8], [0.8, 0.2]])
MASK_TRUE = _images([[1, 0], [1, 0]], [[1, 1], [1, 1]])
DEPTH_PRED = _images([[0.45, 0.3], [0.7, 0.9]], [[0.0, 0.3], [0.2, 0.2]])
# Image 2 has two invalid targets: 0 and 5e-5 (not above 1e-4).
DEPTH_TRUE = _images([[0.4, 0.25], [0.5, 0.5]], [[0.2, 0.0], [0.00005, 0.2]])


def _update(metrics: SegDepthMetrics) -> list[dict[str, float]]:
    return metrics.update(DEPTH_PRED, DEPTH_TRUE, MASK_PROB, MASK_TRUE)


def test_mask_metrics_per_image_by_hand() -> None:
    first, second = _update(SegDepthMetrics())
    # Image 1: predicted {(0,0), (0,1)}, true {(0,0), (1,0)}: I = 1, U = 3.
    assert first["mask_iou"] == pytest.approx(1 / 3)
    assert first["mask_dice"] == pytest.approx(2 / 4)
    # sum(p t) = 0.9 + 0.4 = 1.3, sum(p + t) = 2.0 + 2 = 4.0
    assert first["mask_soft_iou"] == pytest.approx(1.3 / (4.0 - 1.3))
    # Image 2: three predicted, four true: I = 3, U = 4.
    assert second["mask_iou"] == pytest.approx(3 / 4)
    assert second["mask_dice"] == pytest.approx(6 / 7)
    # sum(p t) = 2.6, sum(p + t) = 2.6 + 4 = 6.6
    assert second["mask_soft_iou"] == pytest.approx(2.6 / 4.0)


def test_depth_metrics_per_image_by_hand() -> None:
    first, second = _update(SegDepthMetrics())
    # Image 1, four valid pixels: errors 0.05, 0.05, 0.2, 0.4; ratios 1.125, 1.2, 1.4, 1.8.
    assert first["depth_rmse"] == pytest.approx(math.sqrt(0.205 / 4))
    assert first["depth_mae"] == pytest.approx(0.7 / 4)
    assert first["depth_abs_rel"] == pytest.approx((0.125 + 0.2 + 0.4 + 0.8) / 4)
    assert first["depth_delta1"] == pytest.approx(2 / 4)
    assert first["depth_delta2"] == pytest.approx(3 / 4)
    assert first["depth_delta3"] == pytest.approx(4 / 4)
    # Image 2, two valid pixels: a prediction of 0 (clamped to 1e-4, ratio 2000) and an exact one.
    assert second["depth_rmse"] == pytest.approx(math.sqrt(0.04 / 2))
    assert second["depth_mae"] == pytest.approx(0.2 / 2)
    assert second["depth_abs_rel"] == pytest.approx(1.0 / 2)
    for name in ("depth_delta1", "depth_delta2", "depth_delta3"):
        assert second[name] == pytest.approx(1 / 2)


def test_dataset_level_pools_pixels_by_hand() -> None:
    metrics = SegDepthMetrics()
    _update(metrics)
    result = metrics.compute()
    assert list(result) == list(METRIC_NAMES)
    assert result["mask_iou"] == pytest.approx((1 + 3) / (3 + 4))
    assert result["mask_dice"] == pytest.approx(2 * 4 / (4 + 7))
    assert result["mask_soft_iou"] == pytest.approx((1.3 / 2.7 + 0.65) / 2)
    # Six valid pixels in all.
    assert result["depth_rmse"] == pytest.approx(math.sqrt((0.205 + 0.04) / 6))
    assert result["depth_mae"] == pytest.approx(0.9 / 6)
    assert result["depth_abs_rel"] == pytest.approx((1.525 + 1.0) / 6)
    assert result["depth_delta1"] == pytest.approx(3 / 6)
    assert result["depth_delta2"] == pytest.approx(4 / 6)
    assert result["depth_delta3"] == pytest.approx(5 / 6)


def test_empty_masks_and_missing_depth() -> None:
    zeros = torch.zeros(1, 1, 2, 2)
    (image,) = SegDepthMetrics().update(zeros, zeros, zeros, zeros)
    # Nothing predicted, nothing true: a perfect mask; no valid depth: undefined.
    assert image["mask_iou"] == image["mask_dice"] == image["mask_soft_iou"] == 1.0
    assert all(math.isnan(image[name]) for name in METRIC_NAMES if name.startswith("depth"))


def test_batch_size_does_not_change_dataset_values() -> None:
    generator = torch.Generator().manual_seed(0)
    depth_pred, depth_true, mask_prob = (torch.rand(6, 1, 8, 8, generator=generator) for _ in "abc")
    mask_true = (torch.rand(6, 1, 8, 8, generator=generator) > 0.5).float()
    depth_true[0] = 0  # an image without valid depth
    whole, one_by_one = SegDepthMetrics(), SegDepthMetrics()
    per_image = whole.update(depth_pred, depth_true, mask_prob, mask_true)
    for i in range(6):
        single = one_by_one.update(
            depth_pred[i : i + 1], depth_true[i : i + 1], mask_prob[i : i + 1], mask_true[i : i + 1]
        )
        assert single[0] == pytest.approx(per_image[i], rel=1e-12, nan_ok=True)
    assert one_by_one.compute() == pytest.approx(whole.compute(), rel=1e-12)


def test_reset_and_compute_before_update() -> None:
    metrics = SegDepthMetrics()
    with pytest.raises(RuntimeError, match="before any update"):
        metrics.compute()
    _update(metrics)
    metrics.reset()
    with pytest.raises(RuntimeError):
        metrics.compute()


def test_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="N x 1 x H x W"):
        SegDepthMetrics().update(DEPTH_PRED, DEPTH_TRUE[:1], MASK_PROB, MASK_TRUE)


def test_the_device_side_never_uses_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    """MPS has no float64: per-batch sums stay float32; only the CPU accumulates in float64."""
    made: list[torch.dtype] = []
    original = metrics_module._per_image

    def recording(*tensors: torch.Tensor) -> torch.Tensor:
        sums = original(*tensors)
        made.append(sums.dtype)
        return sums

    monkeypatch.setattr(metrics_module, "_per_image", recording)
    half = torch.rand(2, 1, 8, 8).half()
    metrics = SegDepthMetrics()
    rows = metrics.update(half, half, half, half)
    assert made == [torch.float32, torch.float32] and len(rows) == 2  # mask sums, depth sums
    assert metrics._totals.dtype == torch.float64


def test_every_score_rule_ranks_the_better_model_higher() -> None:
    sharper_mask = {"mask_iou": 0.9, "depth_rmse": 0.05}
    sharper_depth = {"mask_iou": 0.8, "depth_rmse": 0.02}
    assert score(sharper_mask) == pytest.approx(0.85)
    assert score(sharper_mask, "mask_iou") > score(sharper_depth, "mask_iou")
    assert score(sharper_depth, "depth_rmse") > score(sharper_mask, "depth_rmse")
    with pytest.raises(ValueError, match="unknown score rule 'iou'"):
        score(sharper_mask, "iou")


def test_without_depth_there_are_mask_metrics_alone_and_the_same_ones() -> None:
    both, mask_only = SegDepthMetrics(), SegDepthMetrics(depth=False)
    rows = mask_only.update(None, DEPTH_TRUE, MASK_PROB, MASK_TRUE)
    full_rows = _update(both)
    assert all(set(row) == set(MASK_METRIC_NAMES) for row in rows)
    assert rows == [{name: row[name] for name in MASK_METRIC_NAMES} for row in full_rows]
    computed = mask_only.compute()
    assert list(computed) == list(MASK_METRIC_NAMES)  # no depth metric, not even NaN
    assert computed == {name: both.compute()[name] for name in MASK_METRIC_NAMES}
    with pytest.raises(ValueError, match="take no depth"):
        mask_only.update(DEPTH_PRED, DEPTH_TRUE, MASK_PROB, MASK_TRUE)
    with pytest.raises(ValueError, match="need a depth"):
        both.update(None, DEPTH_TRUE, MASK_PROB, MASK_TRUE)


def test_a_score_that_needs_depth_refuses_metrics_without_it() -> None:
    mask_only = {"mask_iou": 0.9, "mask_dice": 0.95}
    assert score(mask_only, "mask_iou") == pytest.approx(0.9)
    for rule in ("iou_minus_rmse", "depth_rmse"):
        with pytest.raises(ValueError, match=f"{rule} needs a depth RMSE.*rank it by mask_iou"):
            score(mask_only, rule)


def test_the_headline_gives_depth_only_where_the_model_predicts_it() -> None:
    both = {"val_mask_iou": 0.93012, "val_depth_rmse": 0.03171}
    assert headline(both, "val_") == "val mask IoU 0.9301, val depth RMSE 0.0317"
    assert headline({"mask_iou": 0.5}) == "mask IoU 0.5000"
