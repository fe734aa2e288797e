"""Room appearance: floor, wall and ceiling patterns, colours (from the spec's palette), wall
items (paintings, doors, windows), albedo and illumination, and the rendered background image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from depthseg.synthetic.palette import PALETTES, Palette
from depthseg.synthetic.room import (
    BACK,
    CEILING,
    FLOOR,
    LEFT,
    RIGHT,
    Box,
    Room,
    View,
    image_window,
    normalised_depth,
    room_view,
)
from depthseg.synthetic.spec import LIGHT_GAIN, ROOM_LOOK, SceneSpec, jittered

_BG_SUPERSAMPLE = 2  # backgrounds are shaded at 2x and area-averaged: no aliased edges

# How each surface maps the hit point (X, Y, Z) to texture coordinates.
_S_IS_X = np.array([1, 1, 0, 0, 1, 0, 1, 1], bool)  # else s = Z
_T_IS_Z = np.array([1, 1, 0, 0, 0, 0, 1, 0], bool)  # else t = Y (height)


@dataclass(frozen=True)
class RoomImage:
    rgb: np.ndarray  # uint8 (S, S, 3), noise included
    noise: np.ndarray  # float32 (S, S, 3): the sensor noise, also laid over pasted figures
    depth: np.ndarray  # uint8 (S, S)
    lights: np.ndarray  # (n, 5): x, y, z, power, radius
    ambient: float
    tint: np.ndarray  # (3,) colour of the light, times the exposure


@dataclass(frozen=True)
class _Tiling:
    """A repeating pattern in surface coordinates: tiles, planks, blocks, panels or plain."""

    size: tuple[float, float]  # tile extent along s and t (metres)
    stagger: float  # shift of each row along s, in tiles (running bond)
    grout: float  # joint width (metres)
    colours: np.ndarray  # (n, 3), alternating between neighbouring tiles
    grout_colour: np.ndarray  # (3,)
    jitter: float  # per-tile brightness variation
    grain: float  # amplitude of wood-like streaks along the tiles
    angle: float  # rotation of the pattern (radians)


@dataclass(frozen=True)
class _WallItem:
    """A flat rectangle on a wall (painting, door, window): a texture inside a frame."""

    surface: int
    s0: float
    s1: float
    t0: float
    t1: float
    frame: float  # frame width (metres)
    frame_colour: np.ndarray
    texture: np.ndarray  # (n, n, 3) float32, row 0 at the top
    glows: bool  # windows show daylight: the room's lights do not shade them


@dataclass(frozen=True)
class _Look:
    floor: _Tiling
    wall: _Tiling
    ceiling: _Tiling
    ceiling_lights: float  # share of ceiling tiles that are light panels
    box_colours: np.ndarray  # (n_boxes, 3)
    bands: tuple[tuple[float, np.ndarray], ...]  # (height, colour) from the floor up: skirting...
    items: tuple[_WallItem, ...]
    lut: np.ndarray  # per-tile random values in [-1, 1]
    blotches: np.ndarray  # (k, 4): amplitude, frequencies along s and t, phase of sine waves
    lights: np.ndarray  # (n, 5): x, y, z, power, radius
    ambient: float
    tint: np.ndarray  # (3,) colour of the light
    brightness: float
    noise_sigma: float


def render_room(spec: SceneSpec, room: Room, bg_index: int) -> RoomImage:
    rng = np.random.default_rng([spec.seed, ROOM_LOOK, bg_index])
    look = _look(rng, room, PALETTES[spec.palette])
    size = spec.image_size
    albedo, glows = _albedo(look, room, room_view(room, size, _BG_SUPERSAMPLE))
    albedo = cv2.resize(albedo, (size, size), interpolation=cv2.INTER_AREA)
    glow = cv2.resize(glows.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    # Light and blotches vary smoothly over a surface: the pixel centres are enough.
    view = room_view(room, size, 1)
    s, t = _surface_coords(view)
    blotches = sum(a * np.sin(fs * s + ft * t + p) for a, fs, ft, p in look.blotches.tolist())
    albedo *= 1 + blotches[..., None]
    light = illumination(look.lights, look.ambient, view.points, view.normals)
    exposure = look.brightness / float(np.median(light[glow < 0.5]))
    light = light * (1 - glow) + glow * (1.15 / exposure)
    gain = _light_gain(spec, bg_index)
    if gain is not None:  # the whole room, daylight in the windows too; figures follow the tint
        exposure *= gain
    noise = rng.standard_normal((size, size, 3), dtype=np.float32) * look.noise_sigma
    rgb = albedo * (light[..., None] * look.tint * exposure) + noise
    return RoomImage(
        rgb=np.clip(rgb + 0.5, 0, 255).astype(np.uint8),
        noise=noise,
        depth=np.rint(normalised_depth(view.z) * 255).astype(np.uint8),
        lights=look.lights,
        ambient=look.ambient,
        tint=(look.tint * exposure).astype(np.float32),
    )


def _light_gain(spec: SceneSpec, bg_index: int) -> float | None:
    """The room's light gain; None for the default (1, 1), which draws nothing."""
    low, high = spec.light_gain
    if low == high == 1.0:
        return None
    return float(np.random.default_rng([spec.seed, LIGHT_GAIN, bg_index]).uniform(low, high))


def _look(rng: np.random.Generator, room: Room, palette: Palette) -> _Look:
    wall = jittered(rng, palette.walls[rng.integers(len(palette.walls))])
    n_lights = int(rng.integers(2, 5))
    lights = np.column_stack(
        [
            rng.uniform(-room.left, room.right, n_lights),
            np.full(n_lights, room.ceiling - 0.3),
            rng.uniform(1.0, room.depth, n_lights),
            rng.uniform(0.5, 1.2, n_lights),
            rng.uniform(2.5, 6.0, n_lights),
        ]
    ).astype(np.float32)
    ceiling = _ceiling_tiling(rng, palette)
    return _Look(
        floor=_floor_tiling(rng, palette),
        wall=_wall_tiling(rng, wall, palette),
        ceiling=ceiling,
        # Light panels are some of the coffers; a plain ceiling has none.
        ceiling_lights=float(rng.choice([0.0, 0.15, 0.4])) if ceiling.grout else 0.0,
        box_colours=_box_colours(rng, room.boxes, wall, palette),
        bands=_wall_bands(rng, wall),
        items=_wall_items(rng, room, palette),
        lut=rng.uniform(-1.0, 1.0, 256).astype(np.float32),  # size: a power of two
        blotches=np.column_stack(
            [rng.uniform(0.0, 0.06, 4), rng.uniform(-2.0, 2.0, (4, 2)), rng.uniform(0, 6.3, 4)]
        ),
        lights=lights,
        ambient=rng.uniform(0.2, 0.45),
        tint=1.0 + rng.uniform(-0.08, 0.08, 3),
        brightness=rng.uniform(0.75, 1.1),
        noise_sigma=rng.uniform(1.0, 4.0),
    )


def _floor_tiling(rng: np.random.Generator, palette: Palette) -> _Tiling:
    uniform = palette.floor_kinds is None  # the default palette's draw, kept byte for byte
    kind = rng.integers(4) if uniform else rng.choice(4, p=palette.floor_kinds)
    angle = float(rng.choice([0.0, np.pi / 2, np.pi / 4]))
    if kind == 0:  # wooden planks, across or along the view
        wood = jittered(rng, palette.woods[rng.integers(len(palette.woods))])
        size = (rng.uniform(*palette.plank[0]), rng.uniform(*palette.plank[1]))
        angle = float(rng.choice([0.0, np.pi / 2]))
        return _Tiling(size, 0.37, 0.004, wood[None], wood * 0.55, 0.12, 0.06, angle)
    first, second = (jittered(rng, c) for c in rng.choice(palette.floors, 2, replace=False))
    if kind == 1:  # checkerboard tiles
        side = rng.uniform(*palette.checker)
        grout = jittered(rng, palette.grout)
        return _Tiling((side, side), 0.0, 0.006, np.stack([first, second]), grout, 0.04, 0, angle)
    if kind == 2:  # stone slabs
        size = (rng.uniform(*palette.slab[0]), rng.uniform(*palette.slab[1]))
        stagger = float(rng.choice([0.0, 0.5]))
        return _Tiling(size, stagger, 0.01, first[None], first * 0.7, 0.12, 0, angle)
    return _Tiling((1e3, 1e3), 0.0, 0.0, first[None], first, 0.0, 0, 0.0)  # concrete, carpet


def _wall_tiling(rng: np.random.Generator, wall: np.ndarray, palette: Palette) -> _Tiling:
    kind = rng.choice(3, p=list(palette.wall_kinds))
    if kind == 1:  # stone blocks
        size = (rng.uniform(*palette.block[0]), rng.uniform(*palette.block[1]))
        return _Tiling(size, 0.5, 0.012, wall[None], wall * 0.75, 0.08, 0, 0.0)
    if kind == 2:  # vertical panels
        size = (rng.uniform(*palette.panel), 1e3)
        return _Tiling(size, 0.0, 0.02, wall[None], wall * 0.8, 0.03, 0, 0.0)
    return _Tiling((1e3, 1e3), 0.0, 0.0, wall[None], wall, 0.0, 0, 0.0)


def _ceiling_tiling(rng: np.random.Generator, palette: Palette) -> _Tiling:
    white = jittered(rng, palette.ceiling, 0.06)
    if rng.random() < 0.5:
        return _Tiling((1e3, 1e3), 0.0, 0.0, white[None], white, 0.0, 0, 0.0)
    side = rng.uniform(1.0, 2.5)  # coffers
    return _Tiling((side, side), 0.0, side * 0.12, white[None], white * 0.8, 0.0, 0, 0.0)


def _box_colours(
    rng: np.random.Generator, boxes: tuple[Box, ...], wall: np.ndarray, palette: Palette
) -> np.ndarray:
    colours = []
    for box in boxes:
        if box.height > 2.5:  # pilaster: the wall's colour, a shade lighter or darker
            colours.append(np.clip(wall * rng.uniform(0.85, 1.15), 0, 255))
        else:
            colours.append(jittered(rng, rng.choice(palette.boxes), 0.05))
    return np.array(colours).reshape(-1, 3)


def _wall_bands(rng: np.random.Generator, wall: np.ndarray) -> tuple[tuple[float, np.ndarray], ...]:
    bands = []
    if rng.random() < 0.35:  # wainscot
        bands.append((rng.uniform(0.8, 1.2), jittered(rng, wall * rng.uniform(0.6, 0.9))))
    if rng.random() < 0.7:  # skirting board
        bands.append((rng.uniform(0.08, 0.18), jittered(rng, wall * rng.uniform(0.3, 0.7))))
    return tuple(bands)


def _wall_items(rng: np.random.Generator, room: Room, palette: Palette) -> tuple[_WallItem, ...]:
    """Paintings, doors and windows along each wall, left to right, not overlapping."""
    spans = {BACK: (-room.left, room.right), LEFT: (0.5, room.depth), RIGHT: (0.5, room.depth)}
    items = []
    for surface, (start, end) in spans.items():
        s = start + rng.uniform(0.2, 1.5)
        while True:
            kind = rng.choice(3, p=[0.65, 0.15, 0.2])
            width = rng.uniform(*((0.4, 2.0), (0.9, 1.8), (0.8, 2.0))[kind])
            if s + width > end - 0.2:
                break
            items.append(_wall_item(rng, palette, kind, surface, s, width, room.ceiling))
            s += width + rng.uniform(0.3, 2.0)
    return tuple(items)


def _wall_item(
    rng: np.random.Generator,
    palette: Palette,
    kind: int,
    surface: int,
    s0: float,
    width: float,
    ceiling: float,
) -> _WallItem:
    frame_colour = jittered(rng, palette.frames[rng.integers(len(palette.frames))])
    if kind == 0:  # painting, centred around eye height
        height = rng.uniform(0.4, min(1.6, ceiling - 2.0))
        t0 = rng.uniform(1.55, 1.85) - height / 2
        t1, frame, texture = t0 + height, rng.uniform(0.03, 0.1), _painting(rng)
    elif kind == 1:  # door
        t0, t1 = 0.0, rng.uniform(2.0, min(2.6, ceiling - 0.3))
        frame, texture = rng.uniform(0.05, 0.1), _door(rng, palette)
    else:  # window
        t0 = rng.uniform(0.8, 1.2)
        t1 = min(ceiling - 0.3, t0 + rng.uniform(1.2, 2.5))
        frame, texture = rng.uniform(0.04, 0.08), _window(rng)
    return _WallItem(surface, s0, s0 + width, t0, t1, frame, frame_colour, texture, kind == 2)


def _painting(rng: np.random.Generator) -> np.ndarray:
    cells = int(rng.integers(2, 6))
    field = rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32)
    texture = cv2.resize(field, (64, 64), interpolation=cv2.INTER_CUBIC)
    for _ in range(rng.integers(0, 4)):  # a few bold shapes
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        centre = tuple(int(c) for c in rng.integers(8, 56, 2))
        if rng.random() < 0.5:
            cv2.circle(texture, centre, int(rng.integers(4, 20)), colour, -1)
        else:
            corner = tuple(int(c) for c in rng.integers(8, 56, 2))
            cv2.rectangle(texture, centre, corner, colour, -1)
    return np.clip(texture, 0, 255)


def _door(rng: np.random.Generator, palette: Palette) -> np.ndarray:
    colour = jittered(rng, palette.doors[rng.integers(len(palette.doors))])
    texture = np.empty((96, 96, 3), np.float32)
    texture[:] = colour
    darker = tuple(float(c) for c in colour * 0.7)
    cv2.rectangle(texture, (14, 8), (82, 40), darker, 2)
    cv2.rectangle(texture, (14, 50), (82, 88), darker, 2)
    cv2.circle(texture, (86, 48), 3, (200, 180, 90), -1)
    return texture


def _window(rng: np.random.Generator) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, 96, dtype=np.float32)[:, None, None]
    sky_top = jittered(rng, np.array([150.0, 190.0, 235.0]), 0.08)
    sky_low = jittered(rng, np.array([225.0, 235.0, 245.0]), 0.05)
    texture = np.broadcast_to(sky_top * (1 - ramp) + sky_low * ramp, (96, 96, 3)).copy()
    columns, rows = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    for i in range(1, columns):
        cv2.line(texture, (96 * i // columns, 0), (96 * i // columns, 95), (40, 40, 40), 3)
    for i in range(1, rows):
        cv2.line(texture, (0, 96 * i // rows), (95, 96 * i // rows), (40, 40, 40), 3)
    return texture


def _surface_coords(view: View) -> tuple[np.ndarray, np.ndarray]:
    """Texture coordinates (metres) of every pixel on the surface it sees."""
    surface, points = view.surface, view.points
    s = np.where(_S_IS_X[surface], points[..., 0], points[..., 2])
    return s, np.where(_T_IS_Z[surface], points[..., 2], points[..., 1])


def _albedo(look: _Look, room: Room, view: View) -> tuple[np.ndarray, np.ndarray]:
    """Surface colour of every pixel, and which pixels glow (windows, ceiling light panels)."""
    surface, box = view.surface, view.box
    s, t = _surface_coords(view)
    # Metres of surface under one pixel: patterns finer than that fade instead of aliasing.
    n, dx, dy = view.normals, view.dx, view.dy
    facing = np.maximum(np.abs(n[..., 0] * dx + n[..., 1] * dy + n[..., 2]), 1e-3)
    pixel = room.focal * view.scale
    footprint = (view.z * (dx**2 + dy**2 + 1) / (pixel * facing)).astype(np.float32)
    albedo = np.empty((*surface.shape, 3), np.float32)
    glows = np.zeros(surface.shape, bool)
    for ids, tiling in (
        ((FLOOR,), look.floor),
        ((CEILING,), look.ceiling),
        ((LEFT, RIGHT, BACK), look.wall),
    ):
        where = np.isin(surface, ids)
        colours, tile, joint = _tiles(s[where], t[where], footprint[where], tiling, look.lut)
        albedo[where] = colours
        if ids == (CEILING,):
            glows[where] = ~joint & (look.lut[tile] > 1 - 2 * look.ceiling_lights)
    on_box = box >= 0
    albedo[on_box] = look.box_colours[box[on_box]]
    walls = np.isin(surface, (LEFT, RIGHT, BACK))
    for height, colour in look.bands:
        albedo[walls & (t < height)] = colour
    for item in look.items:
        window = image_window(room, _item_corners(room, item), view.size, view.scale)
        if window is not None:
            _paint_item(item, surface[window], s[window], t[window], albedo[window], glows[window])
    return albedo, glows


def _tiles(
    s: np.ndarray, t: np.ndarray, footprint: np.ndarray, tiling: _Tiling, lut: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colours of points (s, t) of a tiled surface, their tile's lut index and joint mask."""
    if tiling.angle:  # python floats keep the float32 arrays float32
        cos, sin = math.cos(tiling.angle), math.sin(tiling.angle)
        s, t = s * cos + t * sin, t * cos - s * sin
    (a, b), grout = tiling.size, tiling.grout
    row = np.floor(t / b)
    along = s / a + tiling.stagger * row
    col = np.floor(along)
    cell = col.astype(np.int32), row.astype(np.int32)
    tile = (cell[0] * 7919 + cell[1] * 104729) & (lut.size - 1)  # a hash of the tile
    brightness = 1 + tiling.jitter * lut[tile]
    across = t / b - row
    if tiling.grain:
        streaks = np.sin(across * 25.0 + lut[tile] * 9.0 + np.sin(s * 0.7) * 2.0)
        brightness *= 1 + tiling.grain * streaks * np.clip(1 - footprint * 50, 0, 1)
    colours = tiling.colours[(cell[0] + cell[1]) % len(tiling.colours)] * brightness[:, None]
    joint = ((along - col) * a < grout) | (across * b < grout)
    colours[joint] = tiling.grout_colour
    # Where a pixel covers a good part of a tile, show the pattern's mean colour instead.
    joint_share = grout * (a + b) / (a * b)
    mean = tiling.colours.mean(0) * (1 - joint_share) + tiling.grout_colour * joint_share
    fade = np.clip(2.0 - 4.0 * footprint / min(a, b), 0.0, 1.0)[:, None]
    return mean + (colours - mean) * fade, tile, joint


def _item_corners(room: Room, item: _WallItem) -> np.ndarray:
    s, t = (c.ravel() for c in np.meshgrid([item.s0, item.s1], [item.t0, item.t1]))
    if item.surface == BACK:
        return np.column_stack([s, t, np.full(4, room.depth)])
    return np.column_stack([np.full(4, -room.left if item.surface == LEFT else room.right), t, s])


def _paint_item(
    item: _WallItem,
    surface: np.ndarray,
    s: np.ndarray,
    t: np.ndarray,
    albedo: np.ndarray,
    glows: np.ndarray,
) -> None:
    """Paint the item over the pixels (of a window of the image) that see it."""
    inside = (surface == item.surface) & (s >= item.s0) & (s < item.s1)
    inside &= (t >= item.t0) & (t < item.t1)
    si, ti = s[inside], t[inside]
    n = item.texture.shape[0]
    col = np.minimum((si - item.s0) / (item.s1 - item.s0) * n, n - 1).astype(np.intp)
    row = np.minimum((item.t1 - ti) / (item.t1 - item.t0) * n, n - 1).astype(np.intp)
    colours = item.texture[row, col]
    edge = np.minimum(
        np.minimum(si - item.s0, item.s1 - si), np.minimum(ti - item.t0, item.t1 - ti)
    )
    framed = edge < item.frame
    colours[framed] = item.frame_colour
    albedo[inside] = colours
    glows[inside] = item.glows & ~framed


def illumination(
    lights: np.ndarray, ambient: float, points: np.ndarray, normals: np.ndarray | None
) -> np.ndarray:
    """Ambient plus Lambertian point lights with a soft distance fall-off, at points (..., 3).
    Without normals, the points are on a rounded body, partly facing every light."""
    extra = (1,) * (points.ndim - 1)
    to_light = lights[:, :3].reshape(-1, *extra, 3) - points
    squared = (to_light**2).sum(-1)
    if normals is None:
        cosine = np.float32(0.7)
    else:
        cosine = np.clip((to_light * normals).sum(-1) / np.sqrt(squared), 0, None)
    power, radius = (lights[:, i].reshape(-1, *extra) for i in (3, 4))
    return ambient + (power * cosine / (1 + squared / radius**2)).sum(0)
