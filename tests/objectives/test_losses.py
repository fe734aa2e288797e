from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depthseg.objectives.losses import (
    LOSS_PRESETS,
    JointLoss,
    LossWeights,
    bce_with_logits,
    dice_loss,
    mask_ssim_loss,
    rmse_loss,
    ssim,
    ssim_loss,
)


def _image(*rows: list[float]) -> torch.Tensor:
    return torch.tensor([rows], dtype=torch.float32).unsqueeze(0)


def test_dice_loss_by_hand() -> None:
    prob = _image([1.0, 0.0], [0.5, 0.5])
    target = _image([1.0, 0.0], [1.0, 0.0])
    # sum(p t) = 1.5, sum(p) = 2, sum(t) = 2: 1 - (3 + 1) / (4 + 1)
    assert dice_loss(prob, target).item() == pytest.approx(0.2)
    assert dice_loss(prob, target, smooth=0.0).item() == pytest.approx(1 - 3 / 4)


def test_dice_loss_pools_the_whole_batch() -> None:
    prob = torch.cat([_image([1.0, 1.0], [1.0, 1.0]), _image([0.0, 0.0], [0.0, 0.0])])
    target = torch.cat([_image([1.0, 1.0], [1.0, 1.0]), _image([1.0, 0.0], [0.0, 0.0])])
    # sum(p t) = 4, sum(p) = 4, sum(t) = 5: one ratio over the batch, not a mean of two.
    assert dice_loss(prob, target).item() == pytest.approx(1 - 9 / 10)


def test_bce_with_logits_by_hand() -> None:
    logits = _image([0.0, math.log(3.0)], [math.log(3.0), 0.0])
    target = _image([1.0, 1.0], [0.0, 0.0])
    # sigmoid(log 3) = 3/4: losses ln 2, ln(4/3), ln 4, ln 2
    expected = (math.log(2) + math.log(4 / 3) + math.log(4) + math.log(2)) / 4
    assert bce_with_logits(logits, target).item() == pytest.approx(expected)


def test_rmse_loss_by_hand() -> None:
    pred = _image([0.0, 0.5])
    target = _image([0.3, 0.1])
    assert rmse_loss(pred, target).item() == pytest.approx(math.sqrt(0.125 + 1e-6))
    assert rmse_loss(target, target).item() == pytest.approx(1e-3)


def test_rmse_loss_leaves_out_pixels_whose_depth_is_missing() -> None:
    target = _image([0.3, 0.0, 0.1, 0.00005])  # the second and last are missing (<= 1e-4)
    pred = _image([0.0, 0.9, 0.5, 0.7])
    expected = math.sqrt((0.3**2 + 0.4**2) / 2 + 1e-6)
    assert rmse_loss(pred, target).item() == pytest.approx(expected)
    other = _image([0.0, 0.1, 0.5, 0.0])  # differs only where the depth is missing
    assert rmse_loss(other, target).item() == pytest.approx(expected)
    nothing_known = torch.zeros(1, 1, 1, 4)
    assert rmse_loss(pred, nothing_known).item() == pytest.approx(1e-3)


def test_ssim_loss_counts_only_windows_of_known_depth() -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(1, 1, 32, 32, generator=generator) * 0.8 + 0.1
    pred = target + 0.05 * torch.rand(1, 1, 32, 32, generator=generator)
    target[..., :, :12] = 0.0  # the left strip has no depth
    changed = pred.clone()
    changed[..., :, :12] = torch.rand(1, 1, 32, 12, generator=generator)
    assert ssim_loss(changed, target).item() == pytest.approx(ssim_loss(pred, target).item())
    whole = ssim(pred[..., :, 12:], target[..., :, 12:])  # the known part alone
    assert ssim_loss(pred, target).item() == pytest.approx(1 - whole.item(), abs=1e-6)
    assert ssim_loss(pred, torch.zeros_like(target)).item() == 0.0  # nothing known: no loss


def test_ssim_of_an_image_with_itself_is_one() -> None:
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)
    assert ssim_loss(x, x).item() == pytest.approx(0.0, abs=1e-5)


def test_ssim_of_constant_images_by_hand() -> None:
    x, y = torch.full((1, 1, 16, 16), 0.5), torch.full((1, 1, 16, 16), 0.25)
    # No variance: only the luminance term (2 a b + C1) / (a^2 + b^2 + C1) remains.
    c1 = 0.01**2
    assert ssim(x, y).item() == pytest.approx((0.25 + c1) / (0.3125 + c1))


def test_ssim_matches_direct_formula_on_one_window() -> None:
    # An 11x11 image has exactly one valid window position: weighted statistics over all of it.
    rng = np.random.default_rng(1)
    x, y = rng.random((11, 11)), rng.random((11, 11))
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    mu_x, mu_y = (w * x).sum(), (w * y).sum()
    var_x, var_y = (w * x * x).sum() - mu_x**2, (w * y * y).sum() - mu_y**2
    cov = (w * x * y).sum() - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    expected = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    x_t, y_t = (torch.tensor(a, dtype=torch.float32).view(1, 1, 11, 11) for a in (x, y))
    assert ssim(x_t, y_t).item() == pytest.approx(expected, abs=1e-5)


def test_ssim_decreases_with_noise() -> None:
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 1, 48, 48, generator=generator)
    noise = torch.randn(clean.shape, generator=generator)
    scores = [ssim(clean, (clean + level * noise).clamp(0, 1)).item() for level in (0.05, 0.2, 0.5)]
    assert 1.0 > scores[0] > scores[1] > scores[2]


def test_ssim_rejects_images_smaller_than_the_window() -> None:
    with pytest.raises(ValueError, match="window 11"):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


def test_presets_match_the_reference_combinations() -> None:
    assert LOSS_PRESETS["rmse_bce_dice"] == LossWeights(2.0, 0.0, 1.0, 2.0) == LossWeights()
    assert LOSS_PRESETS["ssim_dice"] == LossWeights(0.0, 2.0, 0.0, 1.0)
    assert LOSS_PRESETS["rmse_bce"] == LossWeights(2.0, 0.0, 1.0, 0.0)


def test_loss_weights_validation() -> None:
    with pytest.raises(ValueError, match="mask_bce"):
        LossWeights(mask_bce=-1.0)
    with pytest.raises(ValueError, match="depth_ssim"):
        LossWeights(depth_ssim=float("nan"))
    with pytest.raises(ValueError, match="at least one"):
        LossWeights(0.0, 0.0, 0.0, 0.0)


def _batch(seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    depth_logits = torch.randn(2, 1, 16, 16, generator=generator, requires_grad=True)
    mask_logits = torch.randn(2, 1, 16, 16, generator=generator, requires_grad=True)
    depth_true = torch.rand(2, 1, 16, 16, generator=generator)
    mask_true = (torch.rand(2, 1, 16, 16, generator=generator) > 0.5).float()
    return depth_logits, mask_logits, depth_true, mask_true


def test_joint_loss_default_is_the_weighted_sum() -> None:
    depth_logits, mask_logits, depth_true, mask_true = _batch()
    total, parts = JointLoss(LOSS_PRESETS["rmse_bce_dice"])(
        depth_logits, mask_logits, depth_true, mask_true
    )
    assert set(parts) == {"depth_rmse", "mask_bce", "mask_dice"}
    rmse = rmse_loss(torch.sigmoid(depth_logits), depth_true)
    bce = bce_with_logits(mask_logits, mask_true)
    dice = dice_loss(torch.sigmoid(mask_logits), mask_true)
    assert total.item() == pytest.approx((2 * rmse + bce + 2 * dice).item(), rel=1e-6)
    assert parts["depth_rmse"].item() == pytest.approx(rmse.item())
    total.backward()
    assert depth_logits.grad is not None and mask_logits.grad is not None


def test_joint_loss_computes_only_weighted_terms() -> None:
    depth_logits, mask_logits, depth_true, mask_true = _batch()
    total, parts = JointLoss(LOSS_PRESETS["ssim_dice"])(
        depth_logits, mask_logits, depth_true, mask_true
    )
    assert set(parts) == {"depth_ssim", "mask_dice"}
    expected = 2 * ssim_loss(torch.sigmoid(depth_logits), depth_true) + dice_loss(
        torch.sigmoid(mask_logits), mask_true
    )
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    _, parts = JointLoss(LOSS_PRESETS["rmse_bce"])(depth_logits, mask_logits, depth_true, mask_true)
    assert set(parts) == {"depth_rmse", "mask_bce"}


def test_joint_loss_is_float32_under_autocast() -> None:
    depth_logits, mask_logits, depth_true, mask_true = _batch()
    weights = LossWeights(depth_rmse=1.0, depth_ssim=1.0, mask_bce=1.0, mask_dice=1.0)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        total, parts = JointLoss(weights)(
            depth_logits.bfloat16(), mask_logits.bfloat16(), depth_true, mask_true
        )
    assert total.dtype == torch.float32
    assert all(value.dtype == torch.float32 for value in parts.values())


def _reference_ssim(x: np.ndarray, y: np.ndarray, window: int = 11, sigma: float = 1.5) -> float:
    """SSIM as the original computed it, written out in numpy: a 2-D gaussian window (11,
    sigma 1.5) at every position where it fits, population statistics, C1 = 0.01^2 and
    C2 = 0.03^2 (data range 1), the mean of the map over windows, images and channels."""
    coords = np.arange(window) - window // 2
    g = np.exp(-(coords**2) / (2 * sigma**2))
    kernel = np.outer(g, g) / np.outer(g, g).sum()
    values = []
    for a, b in zip(x.reshape(-1, *x.shape[-2:]), y.reshape(-1, *y.shape[-2:]), strict=True):
        patches_a = np.lib.stride_tricks.sliding_window_view(a, (window, window))
        patches_b = np.lib.stride_tricks.sliding_window_view(b, (window, window))
        mu_a = (patches_a * kernel).sum(axis=(-2, -1))
        mu_b = (patches_b * kernel).sum(axis=(-2, -1))
        var_a = (patches_a**2 * kernel).sum(axis=(-2, -1)) - mu_a**2
        var_b = (patches_b**2 * kernel).sum(axis=(-2, -1)) - mu_b**2
        cov = (patches_a * patches_b * kernel).sum(axis=(-2, -1)) - mu_a * mu_b
        c1, c2 = 0.01**2, 0.03**2
        values.append(
            ((2 * mu_a * mu_b + c1) * (2 * cov + c2))
            / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        )
    return float(np.mean(values))


def test_the_mask_ssim_loss_is_the_originals_one_minus_ssim_of_the_probability() -> None:
    _, mask_logits, _, mask_true = _batch()
    weights = LossWeights(depth_rmse=0.0, mask_bce=0.0, mask_dice=0.0, mask_ssim=1.0)
    total, parts = JointLoss(weights)(None, mask_logits, torch.zeros_like(mask_true), mask_true)
    assert set(parts) == {"mask_ssim"}
    prob = torch.sigmoid(mask_logits).detach().double().numpy()
    expected = 1 - _reference_ssim(prob, mask_true.double().numpy())
    assert total.item() == pytest.approx(expected, abs=1e-5)
    assert mask_ssim_loss(torch.sigmoid(mask_logits), mask_true).item() == pytest.approx(
        expected, abs=1e-5
    )
    total.backward()
    assert mask_logits.grad is not None and mask_logits.grad.abs().sum() > 0


def test_a_network_without_depth_trains_on_mask_terms_alone() -> None:
    _, mask_logits, depth_true, mask_true = _batch()
    mask_only = LossWeights(depth_rmse=0.0, mask_bce=1.0, mask_dice=2.0)
    total, parts = JointLoss(mask_only)(None, mask_logits, depth_true, mask_true)
    assert set(parts) == {"mask_bce", "mask_dice"}
    expected = bce_with_logits(mask_logits, mask_true) + 2 * dice_loss(
        torch.sigmoid(mask_logits), mask_true
    )
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"predicts no depth.*depth_rmse 2\.0"):
        JointLoss(LossWeights())(None, mask_logits, depth_true, mask_true)
