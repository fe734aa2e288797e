"""What to generate (SceneSpec), where a scene's figure stands (Placement), and what the other
modules share: the depth scale, figure sizes, the random streams and a colour jitter.

Every random choice is seeded from ``(seed, stream, index...)``, so the bytes do not depend on
how the work is split between processes. Indices (``bg_index``, ``fg_index``, ``placement``)
are 1-based, like the names ``bg001``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Distance (metres, along the view) that maps to 255 in every depth map; 0 is at the camera.
MAX_DEPTH_M = 20.0

# Independent random streams, so that e.g. adding a foreground never changes a room.
ROOM_GEOMETRY, ROOM_LOOK, FIGURE, PLACEMENT = 1, 2, 3, 4

FIGURE_FRACTION = (0.33, 0.6)  # figure height over image height (the release: 0.48)


@dataclass(frozen=True)
class SceneSpec:
    """What to generate: counts, image size and seed."""

    backgrounds: int = 40
    foregrounds: int = 10
    placements: int = 8  # per (background, foreground) pair; must be even
    image_size: int = 224
    seed: int = 0

    def __post_init__(self) -> None:
        # Names have 3 digits for bg/fg and 2 for placements, like the release.
        check_range("backgrounds", self.backgrounds, 1, 999)
        check_range("foregrounds", self.foregrounds, 1, 999)
        check_range("placements", self.placements, 2, 98)
        if self.placements % 2:  # half plain, half mirrored
            raise ValueError(f"placements must be even, in [2, 98], got {self.placements}")
        check_range("image_size", self.image_size, 32, 2048)
        check_range("seed", self.seed, 0, 2**63 - 1)

    @property
    def scenes(self) -> int:
        return self.backgrounds * self.foregrounds * self.placements


def check_range(field: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{field} must be an integer in [{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class Placement:
    """Where one scene's figure stands and how it is pasted (image pixels, row 0 at the top)."""

    flipped: bool  # the figure is the horizontal mirror of its fg/ cut-out
    foot_row: int  # row of the soles: the pasted image's last row, on the floor
    foot_col: float  # column of the figure's centre line at the soles
    distance_m: float  # distance along the view from the camera to the foot point
    depth: float  # the figure's value in the depth map: distance_m / MAX_DEPTH_M
    top: int  # the pasted (resized) figure image; its alpha > 0.5 is the scene mask
    left: int
    height: int
    width: int


def jittered(rng: np.random.Generator, colour: np.ndarray, amount: float = 0.12) -> np.ndarray:
    return np.clip(colour * rng.uniform(1 - amount, 1 + amount, 3), 0, 255).astype(np.float32)
