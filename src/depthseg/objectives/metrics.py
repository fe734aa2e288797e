"""Streaming mask and depth metrics over a whole split, pooled over pixels and per image.

Each batch is reduced on its device to a few float32 sums per image (MPS has no float64); only
those move to the CPU, where they become float64 and are accumulated. Dataset-level values are
ratios of the pooled sums (the soft IoU, following the reference project, is the mean of
per-image values), so they do not depend on how the split is cut into batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from depthseg.objectives.losses import MIN_VALID_DEPTH

#: A mask pixel is foreground when its probability (or truth) is above this.
MASK_THRESHOLD = 0.5
DELTA_BASE = 1.25

MASK_METRIC_NAMES = ("mask_iou", "mask_dice", "mask_soft_iou")
DEPTH_METRIC_NAMES = (
    "depth_rmse",
    "depth_mae",
    "depth_abs_rel",
    "depth_delta1",
    "depth_delta2",
    "depth_delta3",
)
METRIC_NAMES = MASK_METRIC_NAMES + DEPTH_METRIC_NAMES

#: Per-image sums, in the column order of the tensors of ``_mask_sums`` and ``_depth_sums``.
_MASK_SUM_NAMES = ("intersection", "pred_area", "true_area", "soft_intersection", "soft_total")
_DEPTH_SUM_NAMES = (
    "valid",
    "squared_error",
    "abs_error",
    "abs_rel_error",
    "delta1",
    "delta2",
    "delta3",
)


def _per_image(*per_pixel: Tensor) -> Tensor:
    return torch.stack([value.flatten(1).sum(dim=1) for value in per_pixel], dim=1)


def _mask_sums(mask_prob: Tensor, mask_true: Tensor) -> Tensor:
    """``N x len(_MASK_SUM_NAMES)`` float32 sums, computed on the inputs' device."""
    mask_prob, mask_true = mask_prob.float(), mask_true.float()
    pred_fg = (mask_prob > MASK_THRESHOLD).float()
    true_fg = (mask_true > MASK_THRESHOLD).float()
    return _per_image(
        pred_fg * true_fg, pred_fg, true_fg, mask_prob * mask_true, mask_prob + mask_true
    )


def _depth_sums(depth_pred: Tensor, depth_true: Tensor) -> Tensor:
    """``N x len(_DEPTH_SUM_NAMES)`` float32 sums, computed on the inputs' device."""
    depth_pred, depth_true = depth_pred.float(), depth_true.float()
    valid = (depth_true > MIN_VALID_DEPTH).float()
    abs_error = (depth_pred - depth_true).abs() * valid
    # Invalid targets are replaced by 1 so the divisions below stay finite; they are masked out.
    safe_true = torch.where(valid > 0, depth_true, torch.ones_like(depth_true))
    safe_pred = depth_pred.clamp(min=MIN_VALID_DEPTH)
    ratio = torch.maximum(safe_pred / safe_true, safe_true / safe_pred)
    return _per_image(
        valid,
        abs_error**2,
        abs_error,
        abs_error / safe_true,
        *((ratio < DELTA_BASE**power).float() * valid for power in (1, 2, 3)),
    )


def _ratio(numerator: Tensor, denominator: Tensor, if_empty: float) -> Tensor:
    """``numerator / denominator``, or ``if_empty`` where the denominator is zero."""
    empty = denominator == 0
    return torch.where(empty, if_empty, numerator / torch.where(empty, 1.0, denominator))


def _soft_iou(sums: dict[str, Tensor]) -> Tensor:
    # Both masks empty everywhere is a perfect match rather than 0/0.
    overlap = sums["soft_intersection"]
    return _ratio(overlap, sums["soft_total"] - overlap, if_empty=1.0)


def _pooled_metrics(sums: dict[str, Tensor]) -> dict[str, Tensor]:
    """Every metric but the soft IoU from (per-image or whole-split) sums; the depth metrics
    only where there are depth sums."""
    intersection = sums["intersection"]
    areas = sums["pred_area"] + sums["true_area"]
    mask = {
        # An empty prediction of an empty mask is perfect, not undefined.
        "mask_iou": _ratio(intersection, areas - intersection, if_empty=1.0),
        "mask_dice": _ratio(2 * intersection, areas, if_empty=1.0),
    }
    if "valid" not in sums:
        return mask
    valid, nan = sums["valid"], float("nan")
    return {
        **mask,
        "depth_rmse": _ratio(sums["squared_error"], valid, if_empty=nan).sqrt(),
        "depth_mae": _ratio(sums["abs_error"], valid, if_empty=nan),
        "depth_abs_rel": _ratio(sums["abs_rel_error"], valid, if_empty=nan),
        **{
            f"depth_delta{power}": _ratio(sums[f"delta{power}"], valid, if_empty=nan)
            for power in (1, 2, 3)
        },
    }


def _check_shapes(**tensors: Tensor | None) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items() if t is not None}
    first = next(iter(shapes.values()))
    if len(set(shapes.values())) > 1 or len(first) != 4 or first[1] != 1:
        raise ValueError(f"metrics need N x 1 x H x W tensors of one shape, got {shapes}")


class SegDepthMetrics:
    """Mask IoU/Dice/soft IoU and depth RMSE/MAE/AbsRel/deltas, streamed over a split.

    ``update`` takes probabilities (after the sigmoid) and truths in [0, 1] and returns per-image
    metrics; ``compute`` returns the dataset-level ones. Per image, depth metrics are NaN when the
    image has no valid depth pixel. With ``depth=False`` (a network without a depth output)
    ``update`` takes ``depth_pred=None`` and there are no depth metrics at all.
    """

    def __init__(self, depth: bool = True) -> None:
        self.depth = depth
        self.sum_names = _MASK_SUM_NAMES + (_DEPTH_SUM_NAMES if depth else ())
        self.names = MASK_METRIC_NAMES + (DEPTH_METRIC_NAMES if depth else ())
        self.reset()

    def reset(self) -> None:
        self._totals = torch.zeros(len(self.sum_names), dtype=torch.float64)
        self._soft_iou_sum = 0.0
        self._num_images = 0

    def update(
        self, depth_pred: Tensor | None, depth_true: Tensor, mask_prob: Tensor, mask_true: Tensor
    ) -> list[dict[str, float]]:
        if (depth_pred is not None) != self.depth:
            raise ValueError(
                f"these metrics {'need a' if self.depth else 'take no'} depth prediction"
            )
        _check_shapes(
            depth_pred=depth_pred, depth_true=depth_true, mask_prob=mask_prob, mask_true=mask_true
        )
        with torch.no_grad():
            parts = [_mask_sums(mask_prob, mask_true)]
            if depth_pred is not None:
                parts.append(_depth_sums(depth_pred, depth_true))
            per_image = torch.cat(parts, dim=1)
        per_image = per_image.cpu().double()
        sums = dict(zip(self.sum_names, per_image.unbind(dim=1), strict=True))
        metrics = {**_pooled_metrics(sums), "mask_soft_iou": _soft_iou(sums)}
        self._totals += per_image.sum(dim=0)
        self._soft_iou_sum += metrics["mask_soft_iou"].sum().item()
        self._num_images += per_image.shape[0]
        columns = {name: metrics[name].tolist() for name in self.names}
        return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]

    def merge(self, reduce: Callable[[Tensor], None]) -> None:
        """Pool the sums of every process: ``reduce`` sums a float64 tensor over them in place."""
        state = torch.cat(
            [
                self._totals,
                torch.tensor([self._soft_iou_sum, self._num_images], dtype=torch.float64),
            ]
        )
        reduce(state)
        self._totals = state[:-2].clone()
        self._soft_iou_sum = state[-2].item()
        self._num_images = int(state[-1].item())

    def compute(self) -> dict[str, float]:
        if self._num_images == 0:
            raise RuntimeError("SegDepthMetrics.compute() called before any update()")
        totals = dict(zip(self.sum_names, self._totals.unbind(), strict=True))
        metrics = {name: value.item() for name, value in _pooled_metrics(totals).items()}
        metrics["mask_soft_iou"] = self._soft_iou_sum / self._num_images
        return {name: metrics[name] for name in self.names}


def headline(metrics: Mapping[str, float], prefix: str = "") -> str:
    """ "mask IoU 0.9301, depth RMSE 0.0317" from the metrics named ``prefix`` + name (e.g.
    ``val_``); the RMSE only where the model predicts depth."""
    label = prefix.replace("_", " ")
    line = f"{label}mask IoU {metrics[f'{prefix}mask_iou']:.4f}"
    rmse = metrics.get(f"{prefix}depth_rmse")
    return line if rmse is None else f"{line}, {label}depth RMSE {rmse:.4f}"


def score(metrics: Mapping[str, float], rule: str = "iou_minus_rmse") -> float:
    """One number that ranks models, higher is better: the champion rule (``registry.score``) and
    the single tuning objective (``iou_minus_rmse`` on the val split, where both terms lie in
    [0, 1] and neither depends on the loss weights being searched)."""
    rules = ("iou_minus_rmse", "mask_iou", "depth_rmse")
    if rule not in rules:
        raise ValueError(f"unknown score rule {rule!r}: expected one of {', '.join(rules)}")
    if rule != "mask_iou" and "depth_rmse" not in metrics:
        raise ValueError(
            f"the score {rule} needs a depth RMSE, and these metrics have none (the model "
            "predicts no depth): rank it by mask_iou"
        )
    iou = metrics["mask_iou"]
    if rule == "mask_iou":
        return float(iou)
    rmse = metrics["depth_rmse"]
    return float(iou - rmse if rule == "iou_minus_rmse" else -rmse)
