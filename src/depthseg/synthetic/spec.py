"""What to generate (SceneSpec), where a scene's figure stands (Placement), and what the other
modules share: the depth scale, the random streams and a colour jitter.

Every random choice is seeded from ``(seed, stream, index...)``, so the bytes do not depend on
how the work is split between processes. Indices (``bg_index``, ``fg_index``, ``placement``)
are 1-based, like the names ``bg001``.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

import numpy as np

#: Distance (metres, along the view) that maps to 255 in every depth map; 0 is at the camera.
MAX_DEPTH_M = 20.0

# Independent random streams, so that e.g. adding a foreground never changes a room.
ROOM_GEOMETRY, ROOM_LOOK, FIGURE, PLACEMENT, LIGHT_GAIN = 1, 2, 3, 4, 5

PALETTE_NAMES = ("default", "alternate")  # the colour tables of ``palette``


@dataclass(frozen=True)
class SceneSpec:
    """What to generate: counts, image size, seed, and the knobs that change how scenes look
    (figure sizes, light, colours); the knobs' defaults give the built-in dataset."""

    backgrounds: int = 40
    foregrounds: int = 10
    placements: int = 8  # per (background, foreground) pair; must be even
    image_size: int = 224
    seed: int = 0
    # Figure height over image height: placements stand where it is in [low, high] (the
    # release: 0.48). Rooms have places for about 0.2 to 0.44; a range that misses those can
    # find none in a room, and generate() stops. The low end also sets how far figures may
    # stand: the plinths beyond them move with it, and so do the depth maps and room looks.
    figure_fraction: tuple[float, float] = (0.33, 0.6)
    # Each room's illumination (and so its figures') is scaled by a gain drawn in [low, high];
    # (1, 1) draws nothing and scales nothing.
    light_gain: tuple[float, float] = (1.0, 1.0)
    palette: str = "default"  # one of PALETTE_NAMES: colour tables and pattern sizes of rooms

    def __post_init__(self) -> None:
        # Names have 3 digits for bg/fg and 2 for placements, like the release.
        check_range("backgrounds", self.backgrounds, 1, 999)
        check_range("foregrounds", self.foregrounds, 1, 999)
        check_range("placements", self.placements, 2, 98)
        if self.placements % 2:  # half plain, half mirrored
            raise ValueError(f"placements must be even, in [2, 98], got {self.placements}")
        check_range("image_size", self.image_size, 32, 2048)
        check_range("seed", self.seed, 0, 2**63 - 1)
        # Tuples of floats: lists (from params) would make the spec unhashable for the caches.
        fraction = check_interval("figure_fraction", self.figure_fraction, 0.05, 0.95, strict=True)
        object.__setattr__(self, "figure_fraction", fraction)
        gain = check_interval("light_gain", self.light_gain, 0.2, 3.0, strict=False)
        object.__setattr__(self, "light_gain", gain)
        if self.palette not in PALETTE_NAMES:
            raise ValueError(f"palette must be one of {PALETTE_NAMES}, got {self.palette!r}")

    @property
    def scenes(self) -> int:
        return self.backgrounds * self.foregrounds * self.placements


def check_range(field: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{field} must be an integer in [{low}, {high}], got {value!r}")


def check_interval(
    field: str, value: object, low: float, high: float, *, strict: bool
) -> tuple[float, float]:
    """A pair (a, b) of numbers with low <= a <= b <= high (a < b if strict), as floats."""
    order = "<" if strict else "<="
    problem = ValueError(
        f"{field} must be [a, b] with {low} <= a {order} b <= {high}, got {value!r}"
    )
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise problem
    if not all(isinstance(v, Real) and not isinstance(v, bool) for v in value):
        raise problem
    a, b = (float(v) for v in value)
    if not (low <= a < b <= high if strict else low <= a <= b <= high):
        raise problem
    return a, b


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
