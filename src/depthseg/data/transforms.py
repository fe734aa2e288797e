"""A scene's four images as one tensor, and the normalisation of batches of them.

A scene crosses from a loader worker to the training process as one uint8 tensor of 8 channels
(``SCENE_CHANNELS``): each tensor a batch carries costs the worker a shared-memory segment and a
file descriptor, which cost more than decoding at small sizes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: Channels of a scene tensor (8 x H x W, or N x 8 x H x W for a batch).
SCENE_CHANNELS = {
    "bg": slice(0, 3), "bg_fg": slice(3, 6), "depth": slice(6, 7), "mask": slice(7, 8),
}  # fmt: skip
#: The two RGB inputs come first, then the depth map and the mask.
IMAGE_CHANNELS = 6
DEPTH_CHANNEL = 6
MASK_CHANNEL = 7


def scene_tensor(bg: np.ndarray, bg_fg: np.ndarray, depth: np.ndarray, mask: np.ndarray) -> Tensor:
    """HxWx3 RGB ``bg`` and ``bg_fg``, HxW ``depth`` and ``mask`` (uint8) -> 8xHxW uint8, the
    mask made 0 or 1: batches stay uint8 (a quarter of float32's bytes) through collation,
    pinning and the copy to the device."""
    height, width = depth.shape
    scene = np.empty((8, height, width), np.uint8)
    scene[SCENE_CHANNELS["bg"]] = bg.transpose(2, 0, 1)
    scene[SCENE_CHANNELS["bg_fg"]] = bg_fg.transpose(2, 0, 1)
    scene[DEPTH_CHANNEL] = depth
    scene[MASK_CHANNEL] = binary_mask(mask)
    return torch.from_numpy(scene)


def part(scenes: Tensor, name: str) -> Tensor:
    """The channels of ``name`` ('bg', 'bg_fg', 'depth', 'mask') of a scene or a batch of them."""
    return scenes[..., SCENE_CHANNELS[name], :, :]


def unit_floats(scenes: Tensor) -> Tensor:
    """uint8 scenes -> float32 where they lie: images and depth in [0, 1], the mask 0 or 1."""
    floats = scenes.float()
    floats[..., :MASK_CHANNEL, :, :] /= 255.0
    return floats


def binary_mask(mask: np.ndarray) -> np.ndarray:
    """HxW uint8 -> {0, 1}; the release's masks are JPEG, so not pure 0/255."""
    return (mask > 127).astype(np.uint8)


def normalised(images: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """Nx3xHxW RGB in [0, 1] -> normalised with the dataset's statistics, where ``images`` lies
    (on the device, for training)."""
    shape = (1, len(mean), 1, 1)
    mean_tensor = torch.tensor(mean, dtype=images.dtype, device=images.device).view(shape)
    std_tensor = torch.tensor(std, dtype=images.dtype, device=images.device).view(shape)
    return (images - mean_tensor) / std_tensor
