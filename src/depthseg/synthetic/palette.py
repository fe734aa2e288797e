"""Palettes: the colour tables and pattern sizes that ``look`` draws rooms from. ``default`` is
the built-in dataset's; ``alternate`` has other hues, materials and tile sizes, so that a model
trained on one palette can be tested on rooms that look different (same geometry and depth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depthseg.synthetic.spec import PALETTE_NAMES


@dataclass(frozen=True)
class Palette:
    walls: np.ndarray  # (n, 3) RGB
    floors: np.ndarray  # (n, 3): tiles, slabs, concrete and carpet; two differ in a checkerboard
    woods: np.ndarray  # (n, 3): floor planks
    frames: np.ndarray  # (n, 3): frames of paintings, doors and windows
    doors: np.ndarray  # (n, 3)
    ceiling: np.ndarray  # (3,)
    grout: np.ndarray  # (3,): joints of checkerboard tiles
    boxes: np.ndarray  # (n, 3): plinths and benches
    floor_kinds: tuple[float, ...] | None  # planks, checkerboard, slabs, plain; None: uniform
    wall_kinds: tuple[float, float, float]  # probabilities of plain, stone blocks, panels
    plank: tuple[tuple[float, float], tuple[float, float]]  # length, width ranges (metres)
    checker: tuple[float, float]  # side range of checkerboard tiles
    slab: tuple[tuple[float, float], tuple[float, float]]  # stone slab size ranges
    block: tuple[tuple[float, float], tuple[float, float]]  # wall block size ranges
    panel: tuple[float, float]  # width range of wall panels


def _table(*rgb: tuple[int, int, int]) -> np.ndarray:
    return np.array(rgb, np.float32)


_DEFAULT_WALLS = _table(
    (236, 233, 226), (228, 218, 198), (205, 205, 200), (176, 180, 186), (120, 122, 128),
    (150, 48, 50), (62, 96, 78), (52, 72, 112), (186, 146, 98), (214, 196, 170),
    (90, 60, 70), (40, 44, 52),
)  # fmt: skip
_DEFAULT_FLOORS = _table(
    (152, 102, 62), (188, 148, 100), (112, 72, 44), (205, 198, 186), (150, 148, 142),
    (70, 68, 66), (176, 160, 140), (120, 40, 36), (230, 226, 218), (40, 40, 44),
)  # fmt: skip

DEFAULT = Palette(
    walls=_DEFAULT_WALLS,
    floors=_DEFAULT_FLOORS,
    woods=_DEFAULT_FLOORS[:3],
    frames=_table((200, 160, 60), (30, 30, 30), (120, 80, 50), (240, 240, 240)),
    doors=_table((120, 80, 50), (70, 45, 30), (200, 200, 195), (60, 70, 80)),
    ceiling=np.full(3, 228.0),
    grout=np.full(3, 120.0),
    boxes=np.array([235.0, 150.0, 40.0, 120.0]).repeat(3).reshape(4, 3),  # greys
    floor_kinds=None,
    wall_kinds=(0.6, 0.2, 0.2),
    plank=((1.0, 3.0), (0.1, 0.22)),
    checker=(0.3, 0.8),
    slab=((0.6, 1.2), (0.4, 0.9)),
    block=((0.5, 0.9), (0.25, 0.4)),
    panel=(0.8, 2.0),
)

# Pastel and saturated walls: pink, mint, lavender, butter, sky, peach; teal, mustard, rust,
# emerald, purple, coral.
_ALTERNATE_WALLS = _table(
    (244, 204, 214), (198, 234, 210), (208, 198, 238), (246, 234, 164), (172, 212, 242),
    (250, 204, 166), (28, 128, 136), (212, 162, 32), (204, 92, 34), (22, 122, 72),
    (92, 42, 142), (232, 112, 102),
)  # fmt: skip
# Stone and carpet: terracotta, slate, sandstone, green marble, red, blue and teal carpet,
# travertine, black granite, ochre.
_ALTERNATE_FLOORS = _table(
    (182, 92, 62), (84, 96, 112), (216, 192, 142), (62, 112, 92), (152, 32, 52),
    (42, 62, 132), (32, 112, 122), (228, 216, 192), (30, 30, 34), (192, 142, 52),
)  # fmt: skip

# Pale or dark-stained wood, coloured frames and doors, a cream ceiling; fewer planks, small
# mosaic tiles, large slabs, bricks and narrow panels.
ALTERNATE = Palette(
    walls=_ALTERNATE_WALLS,
    floors=_ALTERNATE_FLOORS,
    woods=_table((216, 202, 174), (142, 138, 130), (152, 72, 52)),
    frames=_table((182, 182, 192), (162, 32, 42), (22, 62, 122), (92, 142, 62)),
    doors=_table((182, 42, 42), (42, 92, 62), (232, 202, 82), (42, 62, 142)),
    ceiling=np.array([238.0, 228.0, 204.0]),
    grout=np.array([214.0, 208.0, 196.0]),
    boxes=_table((240, 236, 220), (150, 60, 60), (50, 70, 110), (190, 170, 120)),
    floor_kinds=(0.1, 0.3, 0.3, 0.3),
    wall_kinds=(0.4, 0.35, 0.25),
    plank=((0.5, 1.0), (0.06, 0.1)),
    checker=(0.1, 0.25),
    slab=((1.2, 2.2), (0.9, 1.5)),
    block=((0.22, 0.3), (0.07, 0.1)),
    panel=(0.3, 0.6),
)

PALETTES = dict(zip(PALETTE_NAMES, (DEFAULT, ALTERNATE), strict=True))
