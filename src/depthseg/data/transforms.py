"""Augmentation and tensor conversion of a scene's four images.

Photometric changes apply identically to ``bg`` and ``bg_fg`` (so their difference still marks the
person) and never to the labels; geometric changes apply jointly to all four images, so the mask
and the depth map stay aligned with the inputs.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import torch

from depthseg.core.params import AugmentParams

#: Targets of one scene, as albumentations sees them.
ADDITIONAL_TARGETS = {"bg_fg": "image", "depth": "mask"}


def build_augmentation(params: AugmentParams) -> A.Compose | None:
    """The scene augmentation that ``params`` asks for, or None when it asks for none."""
    transforms: list[A.BasicTransform] = []
    if params.geometric:
        transforms += [
            A.HorizontalFlip(p=params.flip_p),
            A.Affine(
                scale=(1 - params.scale, 1 + params.scale),
                translate_percent=(-params.shift, params.shift),
                border_mode=cv2.BORDER_REFLECT_101,
                interpolation=cv2.INTER_LINEAR,
                # Linear for labels too: the mask is binarised again after augmentation.
                mask_interpolation=cv2.INTER_LINEAR,
                p=0.5,
            ),
        ]
    if params.photometric:
        transforms += [
            A.HueSaturationValue(10, 15, 10, p=params.photometric_p),
            A.RandomBrightnessContrast(0.15, 0.15, p=params.photometric_p),
        ]
    if not transforms:
        return None
    return A.Compose(transforms, additional_targets=ADDITIONAL_TARGETS, seed=0)


def image_tensor(
    image: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """HxWx3 uint8 RGB -> 3xHxW float32, normalised with the dataset's statistics."""
    scaled = image.astype(np.float32) / 255.0
    normalised = (scaled - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))


def mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """HxW uint8 -> 1xHxW float32 in {0, 1}; the release's masks are JPEG, so not pure 0/255."""
    return torch.from_numpy((mask > 127).astype(np.float32))[None]


def depth_tensor(depth: np.ndarray) -> torch.Tensor:
    """HxW uint8 -> 1xHxW float32 in [0, 1]."""
    return torch.from_numpy(depth.astype(np.float32) / 255.0)[None]
