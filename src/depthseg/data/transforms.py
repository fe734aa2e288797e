"""Augmentation and tensor conversion of a scene's four images, and normalisation of batches.

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
    # No shape check: the dataset decodes all four images to one size, and the check costs a
    # sixth of the augmentation's time.
    return A.Compose(
        transforms, additional_targets=ADDITIONAL_TARGETS, seed=0, is_check_shapes=False
    )


def chw_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 or HxW uint8 -> 3xHxW or 1xHxW uint8: batches stay uint8 (a quarter of float32's
    bytes) through collation, pinning and the copy to the device."""
    channels = image if image.ndim == 3 else image[..., None]
    # Writable too: a decoded image at its stored size is a read-only view of Pillow's buffer.
    return torch.from_numpy(np.require(channels.transpose(2, 0, 1), requirements=("C", "W")))


def binary_mask(mask: np.ndarray) -> np.ndarray:
    """HxW uint8 -> {0, 1}; the release's masks are JPEG, so not pure 0/255."""
    return (mask > 127).astype(np.uint8)


def normalised(
    images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """Nx3xHxW uint8 RGB -> float32 normalised with the dataset's statistics, where ``images``
    lies (on the device, for training)."""
    scaled = images.float() / 255.0
    shape = (1, len(mean), 1, 1)
    mean_tensor = torch.tensor(mean, dtype=torch.float32, device=images.device).view(shape)
    std_tensor = torch.tensor(std, dtype=torch.float32, device=images.device).view(shape)
    return (scaled - mean_tensor) / std_tensor
