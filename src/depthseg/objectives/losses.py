"""Losses for the joint depth + mask model, and the weighted combinations that were compared.

Depth losses take the sigmoid of the depth logits; the mask uses BCE on logits, and Dice and
SSIM on the sigmoid. Everything is computed in float32, also under autocast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Keeps the gradient of sqrt finite when the error is exactly zero.
RMSE_EPS = 1e-6
#: Depth targets at or below this are missing (as in the reference project): no loss, no metric.
MIN_VALID_DEPTH = 1e-4


def bce_with_logits(mask_logits: Tensor, mask: Tensor) -> Tensor:
    """Mean binary cross-entropy of the mask logits against a 0/1 (or soft) target."""
    return F.binary_cross_entropy_with_logits(mask_logits, mask)


def dice_loss(prob: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """``1 - (2 sum(p t) + s) / (sum(p) + sum(t) + s)``, pooled over the whole batch."""
    intersection = (prob * target).sum()
    return 1 - (2 * intersection + smooth) / (prob.sum() + target.sum() + smooth)


def valid_depth(target: Tensor) -> Tensor:
    """1.0 where the true depth is known (above ``MIN_VALID_DEPTH``), else 0.0."""
    return (target > MIN_VALID_DEPTH).to(target.dtype)


def rmse_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``sqrt(mse + 1e-6)`` over the pixels whose true depth is known (as the metrics)."""
    valid = valid_depth(target)
    squared = ((pred - target) ** 2 * valid).sum() / valid.sum().clamp(min=1.0)
    return torch.sqrt(squared + RMSE_EPS)


def _gaussian_window(size: int, sigma: float, like: Tensor) -> Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    window = torch.exp(-(coords**2) / (2 * sigma**2))
    return window / window.sum()


def _gaussian_blur_valid(x: Tensor, window: Tensor) -> Tensor:
    """Separable per-channel gaussian filter without padding ('valid' output)."""
    channels, size = x.shape[1], window.numel()
    vertical = window.view(1, 1, size, 1).expand(channels, 1, size, 1)
    horizontal = window.view(1, 1, 1, size).expand(channels, 1, 1, size)
    x = F.conv2d(x, vertical, groups=channels)
    return F.conv2d(x, horizontal, groups=channels)


def ssim(
    x: Tensor,
    y: Tensor,
    window: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
    weights: Tensor | None = None,
) -> Tensor:
    """Mean SSIM (Wang et al. 2004) of two ``N x C x H x W`` batches, as a 0-dim tensor.

    Local statistics use a gaussian window with 'valid' filtering (no padding: only positions
    where the whole window fits count, as in scikit-image and pytorch-msssim), population
    (biased) variances, ``C1 = (0.01 L)^2`` and ``C2 = (0.03 L)^2``. Runs in float32 with autocast
    off: the variance ``E[x^2] - E[x]^2`` cancels catastrophically in half precision.
    ``weights`` (0/1, the shape of ``x``) limits the mean to windows made only of weighted pixels;
    with none, the SSIM is 1.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(
            f"ssim needs two N x C x H x W tensors of the same shape, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    if window % 2 == 0 or min(x.shape[-2:]) < window:
        raise ValueError(
            f"ssim window must be odd and fit in the image: window {window}, image "
            f"{x.shape[-2]}x{x.shape[-1]}"
        )
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, y = x.float(), y.float()
        kernel = _gaussian_window(window, sigma, x)
        c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
        mu_x, mu_y = _gaussian_blur_valid(x, kernel), _gaussian_blur_valid(y, kernel)
        var_x = _gaussian_blur_valid(x * x, kernel) - mu_x**2
        var_y = _gaussian_blur_valid(y * y, kernel) - mu_y**2
        cov_xy = _gaussian_blur_valid(x * y, kernel) - mu_x * mu_y
        luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
        contrast_structure = (2 * cov_xy + c2) / (var_x + var_y + c2)
        similarity = luminance * contrast_structure
        if weights is None:
            return similarity.mean()
        whole = (F.avg_pool2d(weights.float(), window, stride=1) > 1 - 1e-6).float()
        count = whole.sum()
        return torch.where(
            count > 0, (similarity * whole).sum() / count.clamp(min=1.0), similarity.new_ones(())
        )


def ssim_loss(x: Tensor, y: Tensor) -> Tensor:
    """``1 - ssim`` over windows whose true depth ``y`` is known everywhere (window 11, sigma
    1.5, data range 1)."""
    return 1 - ssim(x, y, weights=valid_depth(y))


def mask_ssim_loss(prob: Tensor, target: Tensor) -> Tensor:
    """``1 - ssim`` of the mask probability and the true mask over every window (window 11,
    sigma 1.5, data range 1): the original's SSIM loss, which MaskNet was trained with."""
    return 1 - ssim(prob, target)


@dataclass(frozen=True)
class LossWeights:
    """Weight of each term of :class:`JointLoss`; a zero weight skips that term entirely."""

    depth_rmse: float = 2.0
    depth_ssim: float = 0.0
    mask_bce: float = 1.0
    mask_dice: float = 2.0
    mask_ssim: float = 0.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"loss weight {field.name} must be finite and >= 0, got {value}")
        if not any(self.as_dict().values()):
            names = ", ".join(self.as_dict())
            raise ValueError(f"at least one loss weight ({names}) must be > 0")

    def as_dict(self) -> dict[str, float]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @property
    def weighs_depth(self) -> bool:
        return self.depth_rmse > 0 or self.depth_ssim > 0


#: The three combined losses compared by the reference project (the first one won).
LOSS_PRESETS: dict[str, LossWeights] = {
    "rmse_bce_dice": LossWeights(depth_rmse=2.0, depth_ssim=0.0, mask_bce=1.0, mask_dice=2.0),
    "ssim_dice": LossWeights(depth_rmse=0.0, depth_ssim=2.0, mask_bce=0.0, mask_dice=1.0),
    "rmse_bce": LossWeights(depth_rmse=2.0, depth_ssim=0.0, mask_bce=1.0, mask_dice=0.0),
}


class JointLoss(nn.Module):
    """Weighted sum of the depth and mask losses; only terms with a weight > 0 are computed.

    A network without a depth output passes ``depth_logits=None``; its weights must then give
    the depth terms no weight (there is nothing for them to measure).
    """

    def __init__(self, weights: LossWeights) -> None:
        super().__init__()
        self.weights = weights

    def forward(
        self,
        depth_logits: Tensor | None,
        mask_logits: Tensor,
        depth_true: Tensor,
        mask_true: Tensor,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Return ``(total, components)``; components are unweighted and keep their graph."""
        # float32 even under autocast: losses are reductions and fp16/bf16 sums lose precision.
        mask_logits, mask_true = mask_logits.float(), mask_true.float()
        depth_true = depth_true.float()
        weights = self.weights
        components: dict[str, Tensor] = {}
        if weights.weighs_depth:
            if depth_logits is None:
                raise ValueError(
                    "the network predicts no depth, but the loss weighs depth terms "
                    f"(depth_rmse {weights.depth_rmse}, depth_ssim {weights.depth_ssim})"
                )
            depth_prob = torch.sigmoid(depth_logits.float())
            if weights.depth_rmse > 0:
                components["depth_rmse"] = rmse_loss(depth_prob, depth_true)
            if weights.depth_ssim > 0:
                components["depth_ssim"] = ssim_loss(depth_prob, depth_true)
        if weights.mask_bce > 0:
            components["mask_bce"] = bce_with_logits(mask_logits, mask_true)
        if weights.mask_dice > 0 or weights.mask_ssim > 0:
            mask_prob = torch.sigmoid(mask_logits)
            if weights.mask_dice > 0:
                components["mask_dice"] = dice_loss(mask_prob, mask_true)
            if weights.mask_ssim > 0:
                components["mask_ssim"] = mask_ssim_loss(mask_prob, mask_true)
        weight_of = weights.as_dict()
        total = torch.stack([weight_of[name] * value for name, value in components.items()]).sum()
        return total, components
