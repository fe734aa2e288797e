"""Procedural scenes written in the exact layout of the MODEST Museum release.

Each background is a box-shaped room (floor, ceiling, back and side walls, pilasters, plinths,
paintings, doors and windows) seen by a level pinhole camera; its depth map is computed exactly
from that geometry. Each foreground is a drawn person-like figure. A scene stands one figure on
the floor of one room at a perspective-correct size, so the figure's depth is the floor's depth
at its feet. Every random choice is seeded from ``(seed, stream, index...)``, so the bytes do not
depend on how the work is split between processes.

Indices (``bg_index``, ``fg_index``, ``placement``) are 1-based, like the names ``bg001``.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache, partial

import cv2
import numpy as np

from depthseg.data import layout

#: Distance (metres, along the view) that maps to 255 in every depth map; 0 is at the camera.
MAX_DEPTH_M = 20.0
JPEG_QUALITY = 90

# Independent random streams, so that e.g. adding a foreground never changes a room.
_ROOM_GEOMETRY, _ROOM_LOOK, _FIGURE, _PLACEMENT = 1, 2, 3, 4

_FG_HEIGHT_RATIO = 108 / 224  # the release's cut-outs are 108 px tall in 224 px scenes
_FIGURE_FRACTION = (0.33, 0.6)  # figure height over image height (the release: 0.48)
_SIDE_MARGIN_M = 0.45  # feet stay this far from the side walls (pilasters protrude up to 0.3 m)
_BG_SUPERSAMPLE = 2  # backgrounds are shaded at 2x and area-averaged: no aliased edges
_FIGURE_SUPERSAMPLE = 4  # figures are drawn at 4x their fg/ height for a clean alpha edge

# Surfaces a ray can hit, and how each maps the hit point (X, Y, Z) to texture coordinates.
_FLOOR, _CEILING, _LEFT, _RIGHT, _BACK, _BOX_SIDE, _BOX_TOP, _BOX_FRONT = range(8)
_S_IS_X = np.array([1, 1, 0, 0, 1, 0, 1, 1], bool)  # else s = Z
_T_IS_Z = np.array([1, 1, 0, 0, 0, 0, 1, 0], bool)  # else t = Y (height)
_NORMALS = np.array(
    [[0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, -1], [0, 0, 0], [0, 1, 0], [0, 0, -1]],
    np.float32,
)  # the box side's x sign depends on the ray and is filled in per pixel

_WALL_COLOURS = np.array(
    [
        (236, 233, 226), (228, 218, 198), (205, 205, 200), (176, 180, 186), (120, 122, 128),
        (150, 48, 50), (62, 96, 78), (52, 72, 112), (186, 146, 98), (214, 196, 170),
        (90, 60, 70), (40, 44, 52),
    ],
    np.float32,
)  # fmt: skip
_FLOOR_COLOURS = np.array(
    [
        (152, 102, 62), (188, 148, 100), (112, 72, 44), (205, 198, 186), (150, 148, 142),
        (70, 68, 66), (176, 160, 140), (120, 40, 36), (230, 226, 218), (40, 40, 44),
    ],
    np.float32,
)  # fmt: skip
_WOOD_COLOURS = _FLOOR_COLOURS[:3]
_SKIN_TONES = np.array(
    [
        (255, 220, 190), (236, 190, 160), (210, 160, 120),
        (170, 120, 85), (120, 80, 55), (80, 55, 40),
    ],
    np.float32,
)  # fmt: skip
_HAIR_COLOURS = np.array(
    [(25, 20, 18), (60, 40, 25), (110, 75, 40), (190, 150, 90), (140, 60, 30), (170, 170, 170)],
    np.float32,
)
_NEUTRAL_CLOTHES = np.array(
    [(20, 20, 24), (235, 235, 235), (128, 128, 128), (30, 40, 80), (60, 90, 140), (180, 160, 120)],
    np.float32,
)
_FRAME_COLOURS = np.array(
    [(200, 160, 60), (30, 30, 30), (120, 80, 50), (240, 240, 240)], np.float32
)
_DOOR_COLOURS = np.array([(120, 80, 50), (70, 45, 30), (200, 200, 195), (60, 70, 80)], np.float32)
# Degrees swung outwards: the upper arm from hanging, the forearm from the upper arm.
_ARM_POSES = (
    ((3, 12), (-5, 15)),  # hanging
    ((35, 55), (-140, -110)),  # hand on the hip
    ((110, 160), (-30, 20)),  # waving
    ((5, 20), (-90, -50)),  # holding something in front
    ((10, 25), (-170, -150)),  # phoning
)
# Figure label image values; 0 is transparent.
_SKIN, _HAIR, _TOP, _BOTTOM, _SHOES, _BAG = range(1, 7)


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
        _check_range("backgrounds", self.backgrounds, 1, 999)
        _check_range("foregrounds", self.foregrounds, 1, 999)
        _check_range("placements", self.placements, 2, 98)
        if self.placements % 2:  # half plain, half mirrored
            raise ValueError(f"placements must be even, in [2, 98], got {self.placements}")
        _check_range("image_size", self.image_size, 32, 2048)
        _check_range("seed", self.seed, 0, 2**63 - 1)

    @property
    def scenes(self) -> int:
        return self.backgrounds * self.foregrounds * self.placements


def _check_range(field: str, value: object, low: int, high: int) -> None:
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


@dataclass(frozen=True)
class _Box:
    """An axis-aligned block standing on the floor (pilaster, plinth, bench)."""

    x0: float
    x1: float
    height: float
    z0: float
    z1: float


@dataclass(frozen=True)
class _Room:
    """Camera and room geometry. World: camera at X = Z = 0, Y up, floor at Y = 0, view along Z."""

    focal: float  # pixels
    cx: float
    cy: float  # horizon row (the camera looks level)
    camera_height: float
    left: float  # distances from the camera to the walls
    right: float
    depth: float
    ceiling: float
    figure_zone: float  # feet stand closer than this; plinths and benches stand beyond it
    boxes: tuple[_Box, ...]


@dataclass(frozen=True)
class _Figure:
    master: np.ndarray  # float32 (h, w, 4): premultiplied RGB and alpha, 2x the fg/ size
    mirrored: np.ndarray  # the same, flipped left-right
    extent_m: float  # real height of the drawn extent (head or raised hand to soles)
    png: bytes
    mask_png: bytes


@dataclass(frozen=True)
class _RoomImage:
    rgb: np.ndarray  # uint8 (S, S, 3), noise included
    noise: np.ndarray  # float32 (S, S, 3): the sensor noise, also laid over pasted figures
    depth: np.ndarray  # uint8 (S, S)
    lights: np.ndarray  # (n, 5): x, y, z, power, radius
    ambient: float
    tint: np.ndarray  # (3,) colour of the light, times the exposure


@dataclass(frozen=True)
class _Chunk:
    """Everything one background contributes, returned from a worker to the writing process."""

    members: list[tuple[str, bytes]]
    file_map: list[str]
    bbox: list[str]


# ---------------------------------------------------------------------------------------------
# Public entry points


def generate(
    spec: SceneSpec,
    write: Callable[[str, bytes], None],
    *,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Call write(member_name, data) for every file of the layout; return the number of scenes.
    progress(n) is called with the number of scenes just finished (for a progress bar)."""
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    for fg_index, figure in enumerate(_figures(spec), start=1):
        write(layout.fg_member(layout.fg_name(fg_index)), figure.png)
        write(layout.fg_mask_member(layout.fg_name(fg_index)), figure.mask_png)
    file_map: list[str] = []
    bbox: list[str] = []
    for chunk in _chunks(spec, workers):
        for name, data in chunk.members:
            write(name, data)
        file_map += chunk.file_map
        bbox += chunk.bbox
        if progress is not None:
            progress(len(chunk.file_map))
    write(layout.FILE_MAP, "".join(file_map).encode())
    write(layout.BBOX_FILE, "".join(bbox).encode())
    return spec.scenes


def room_depth(spec: SceneSpec, bg_index: int) -> np.ndarray:
    """The exact depth map of a background room, float in [0, 1] (distance / MAX_DEPTH_M)."""
    _check_range("bg_index", bg_index, 1, spec.backgrounds)
    return _normalised_depth(_cast(_room(spec, bg_index), spec.image_size, 1)[0])


def placement_geometry(spec: SceneSpec, bg_index: int, fg_index: int, placement: int) -> Placement:
    """Where scene ``bgNNN_fgNNN_KK`` (1-based indices) stands its figure."""
    _check_range("bg_index", bg_index, 1, spec.backgrounds)
    _check_range("fg_index", fg_index, 1, spec.foregrounds)
    _check_range("placement", placement, 1, spec.placements)
    figure = _figures(spec)[fg_index - 1]
    return _placements(spec, _room(spec, bg_index), figure, bg_index, fg_index)[placement - 1]


# ---------------------------------------------------------------------------------------------
# Scheduling


def _chunks(spec: SceneSpec, workers: int) -> Iterator[_Chunk]:
    backgrounds = range(1, spec.backgrounds + 1)
    render = partial(_render_background_scenes, spec)
    if workers == 1:
        yield from map(render, backgrounds)
        return
    # Forked workers inherit the figures already cached by generate(); imap keeps the order.
    # One OpenCV thread per process: the pool already uses every core. Set in the parent so the
    # forked children inherit it; calling setNumThreads in a child can deadlock on the thread
    # pool it inherited from the parent.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield from pool.imap(render, backgrounds)
    finally:
        cv2.setNumThreads(threads)


def _render_background_scenes(spec: SceneSpec, bg_index: int) -> _Chunk:
    room = _room(spec, bg_index)
    image = _render_room(spec, room, bg_index)
    bg = layout.bg_name(bg_index)
    chunk = _Chunk([(layout.bg_member(bg), _jpeg(image.rgb))], [], [])
    for fg_index, figure in enumerate(_figures(spec), start=1):
        placements = _placements(spec, room, figure, bg_index, fg_index)
        gains = _figure_gains(room, image, placements)
        for k, (placement, gain) in enumerate(zip(placements, gains, strict=True), start=1):
            scene, mask, depth, (x, y, w, h) = _composite(image, figure, placement, gain)
            name = layout.scene_name(bg, layout.fg_name(fg_index), k)
            mask_name, depth_name = f"{name}_mask", f"{name}_depth_map"
            chunk.members.append((layout.scene_member(name), _jpeg(scene)))
            chunk.members.append((layout.mask_member(mask_name), _jpeg(mask)))
            chunk.members.append((layout.depth_member(depth_name), _jpeg(depth)))
            chunk.file_map.append(f"{bg}\t{name}\t{mask_name}\t{depth_name}\n")
            chunk.bbox.append(f"{layout.scene_member(name).split('/')[-1]}\t{x}\t{y}\t{w}\t{h}\n")
    return chunk


def _jpeg(image: np.ndarray) -> bytes:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return cv2.imencode(".jpeg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()


def _png(image: np.ndarray) -> bytes:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    return cv2.imencode(".png", image)[1].tobytes()


# ---------------------------------------------------------------------------------------------
# Placing and pasting a figure


def _placements(
    spec: SceneSpec, room: _Room, figure: _Figure, bg_index: int, fg_index: int
) -> list[Placement]:
    """Each placement picks a foot row among those where the figure fits, then a floor point
    on that row. Rows below the horizon only, and never the last one."""
    size = spec.image_size
    rows = np.arange(int(room.cy) + 1, size - 1)
    distance = room.camera_height * room.focal / (rows - room.cy)
    heights = np.rint(figure.extent_m * room.focal / distance).astype(int)
    aspect = figure.master.shape[1] / figure.master.shape[0]
    widths = np.maximum(1, np.rint(heights * aspect)).astype(int)
    metres_per_px = distance / room.focal
    # Foot X range: on the floor clear of the walls, and with the whole figure 1 px inside.
    x_lo = np.maximum(
        -room.left + _SIDE_MARGIN_M + widths / 2 * metres_per_px,
        (1 + widths / 2 - room.cx) * metres_per_px,
    )
    x_hi = np.minimum(
        room.right - _SIDE_MARGIN_M - widths / 2 * metres_per_px,
        (size - 1 - widths / 2 - room.cx) * metres_per_px,
    )
    fits = (
        (heights >= _FIGURE_FRACTION[0] * size)
        & (heights <= _FIGURE_FRACTION[1] * size)
        & (rows - heights >= 0)
        & (distance <= room.figure_zone)
        & (x_lo <= x_hi)
    )
    candidates = np.flatnonzero(fits)
    if not candidates.size:
        raise RuntimeError(f"no room for fg {fg_index} in bg {bg_index}: {room}")
    placements = []
    for k in range(1, spec.placements + 1):
        rng = np.random.default_rng([spec.seed, _PLACEMENT, bg_index, fg_index, k])
        i = rng.choice(candidates)
        foot_col = room.cx + rng.uniform(x_lo[i], x_hi[i]) / metres_per_px[i]
        placement = Placement(
            flipped=k > spec.placements // 2,
            foot_row=int(rows[i]),
            foot_col=float(foot_col),
            distance_m=float(distance[i]),
            depth=float(min(distance[i] / MAX_DEPTH_M, 1.0)),
            top=int(rows[i] - heights[i] + 1),
            left=round(foot_col - widths[i] / 2),
            height=int(heights[i]),
            width=int(widths[i]),
        )
        placements.append(placement)
    return placements


def _figure_gains(room: _Room, image: _RoomImage, placements: list[Placement]) -> np.ndarray:
    """RGB gain (n, 3) that lights each placed figure like the room's lights reach its chest."""
    chests = np.array(
        [
            [(p.foot_col - room.cx) * p.distance_m / room.focal, 1.2, p.distance_m]
            for p in placements
        ]
    )
    light = _illumination(image.lights, image.ambient, chests, None)
    return (light[:, None] * image.tint).astype(np.float32)


def _composite(
    image: _RoomImage, figure: _Figure, placement: Placement, gain: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Scene RGB, mask, depth map and the mask's tight bbox (x, y, w, h)."""
    p = placement
    source = figure.mirrored if p.flipped else figure.master
    pasted = cv2.resize(source, (p.width, p.height), interpolation=cv2.INTER_AREA)
    alpha = pasted[..., 3:]
    window = (slice(p.top, p.top + p.height), slice(p.left, p.left + p.width))
    # The figure gets the background's sensor noise too: no clean-pixel shortcut.
    colour = pasted[..., :3] * gain + image.noise[window] * alpha
    scene = image.rgb.copy()
    blended = image.rgb[window] * (1 - alpha) + colour
    scene[window] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    inside = alpha[..., 0] > 0.5
    mask = np.zeros(scene.shape[:2], np.uint8)
    mask[window] = inside * np.uint8(255)
    depth = image.depth.copy()
    depth[window][inside] = round(p.depth * 255)
    ys, xs = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    bbox = (p.left + xs[0], p.top + ys[0], xs[-1] - xs[0] + 1, ys[-1] - ys[0] + 1)
    return scene, mask, depth, tuple(int(v) for v in bbox)


# ---------------------------------------------------------------------------------------------
# Room geometry and ray casting


@lru_cache(maxsize=64)
def _room(spec: SceneSpec, bg_index: int) -> _Room:
    rng = np.random.default_rng([spec.seed, _ROOM_GEOMETRY, bg_index])
    size = spec.image_size
    # One lens and a camera held near eye level in every room, as one photographer would: with
    # focal length and height both free, absolute depth could not be told from a single image.
    focal = size * 0.78  # horizontal field of view 65 degrees
    camera_height = rng.uniform(1.45, 1.75)
    depth = rng.uniform(10.0, 18.0)
    ceiling = rng.uniform(max(3.2, camera_height + 1.2), 7.0)
    # The tallest figure extent (raised arm) is below 2.4 m: it shrinks to 25% of the image
    # by this distance, so nothing stands beyond it.
    figure_zone = min(depth - 1.5, 2.4 * focal / (_FIGURE_FRACTION[0] * size))
    left, right = rng.uniform(2.5, 7.0, 2)
    boxes = _pilasters(rng, left, right, depth, ceiling) + _plinths(
        rng, left, right, depth, figure_zone
    )
    return _Room(
        focal=focal,
        cx=(size - 1) / 2 + size * rng.uniform(-0.04, 0.04),
        cy=size * rng.uniform(0.36, 0.52),
        camera_height=camera_height,
        left=left,
        right=right,
        depth=depth,
        ceiling=ceiling,
        figure_zone=figure_zone,
        boxes=boxes,
    )


def _pilasters(
    rng: np.random.Generator, left: float, right: float, depth: float, ceiling: float
) -> tuple[_Box, ...]:
    if rng.random() < 0.5:
        return ()
    spacing, width, protrusion = rng.uniform(2.0, 4.0), rng.uniform(0.3, 0.6), rng.uniform(0.1, 0.3)
    starts = np.arange(rng.uniform(0.5, spacing), depth - width, spacing)
    return tuple(
        _Box(x0, x0 + protrusion, ceiling, z, z + width)
        for z in starts
        for x0 in (-left, right - protrusion)
    )


def _plinths(
    rng: np.random.Generator, left: float, right: float, depth: float, figure_zone: float
) -> tuple[_Box, ...]:
    boxes = []
    for _ in range(rng.integers(0, 4)):
        bench = rng.random() < 0.3
        width = rng.uniform(1.5, 3.0) if bench else rng.uniform(0.4, 1.0)
        length = rng.uniform(0.4, 0.6) if bench else rng.uniform(0.4, 1.0)
        height = rng.uniform(0.4, 0.5) if bench else rng.uniform(0.6, 1.2)
        z0 = rng.uniform(figure_zone + 0.3, depth)
        x0 = rng.uniform(-left, right - width)
        if z0 + length <= depth:
            boxes.append(_Box(x0, x0 + width, height, z0, z0 + length))
    return tuple(boxes)


def _pixel_coords(size: int, scale: int) -> np.ndarray:
    """Image coordinates of the pixel centres of a ``scale`` times supersampled grid."""
    return (np.arange(size * scale) + 0.5) / scale - 0.5


def _ray_slopes(room: _Room, size: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column X/Z and per row Y/Z of the pixels' viewing rays (Y up)."""
    coords = _pixel_coords(size, scale)
    return ((coords - room.cx) / room.focal)[None, :], ((room.cy - coords) / room.focal)[:, None]


@dataclass(frozen=True)
class _View:
    """What each pixel of a (supersampled) grid sees."""

    z: np.ndarray  # distance along the view
    surface: np.ndarray
    box: np.ndarray  # index into room.boxes, -1 for none
    points: np.ndarray  # (h, w, 3) world X, Y, Z
    normals: np.ndarray  # (h, w, 3)
    dx: np.ndarray  # (1, w)
    dy: np.ndarray  # (h, 1)
    size: int  # of the image
    scale: int  # grid pixels per image pixel


def _view(room: _Room, size: int, scale: int) -> _View:
    z, surface, box = _cast(room, size, scale)
    dx, dy = _ray_slopes(room, size, scale)
    points = np.empty((*z.shape, 3), np.float32)
    points[..., 2] = z
    points[..., 0] = points[..., 2] * dx.astype(np.float32)
    points[..., 1] = points[..., 2] * dy.astype(np.float32) + room.camera_height
    normals = _NORMALS[surface]
    side = surface == _BOX_SIDE
    normals[side, 0] = -np.sign(np.broadcast_to(dx, z.shape)[side])
    return _View(z, surface, box, points, normals, dx, dy, size, scale)


def _cast(room: _Room, size: int, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance z along the view, surface id and box index (-1: none) of what each pixel sees."""
    dx, dy = _ray_slopes(room, size, scale)
    with np.errstate(divide="ignore"):
        # Floor and ceiling depend on the row only, side walls on the column only.
        floor = np.where(dy < 0, room.camera_height / -dy, np.inf)
        ceiling = np.where(dy > 0, (room.ceiling - room.camera_height) / dy, np.inf)
        left = np.where(dx < 0, room.left / -dx, np.inf)
        right = np.where(dx > 0, room.right / dx, np.inf)
    row_z = np.minimum(floor, ceiling)
    row_surface = np.where(floor < ceiling, _FLOOR, _CEILING)
    col_z = np.minimum(left, right)
    col_surface = np.where(left < right, _LEFT, _RIGHT)
    nearest = np.minimum(row_z, col_z)
    z = np.minimum(nearest, room.depth)
    surface = np.where(row_z <= col_z, row_surface, col_surface)
    surface = np.where(nearest >= room.depth, _BACK, surface).astype(np.int8)
    box = np.full(z.shape, -1, np.int16)
    for index in range(len(room.boxes)):
        _cast_box(room, index, size, scale, dx[0], dy[:, 0], (z, surface, box))
    return z, surface, box


def _cast_box(
    room: _Room,
    index: int,
    size: int,
    scale: int,
    dx: np.ndarray,
    dy: np.ndarray,
    hits: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Slab-test the pixels of a box's projected bounding rectangle; update z, surface, box."""
    box = room.boxes[index]
    z, surface, box_index = hits
    corners = np.stack(np.meshgrid([box.x0, box.x1], [0, box.height], [box.z0, box.z1]), -1)
    window = _image_window(room, corners.reshape(-1, 3), size, scale)
    if window is None:
        return
    rows, cols = window
    bx, by = dx[cols][None, :], dy[rows][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        x0, x1 = box.x0 / bx, box.x1 / bx
        y0, y1 = -room.camera_height / by, (box.height - room.camera_height) / by
    near_x, near_y = np.minimum(x0, x1), np.minimum(y0, y1)
    near = np.maximum(np.maximum(near_x, near_y), box.z0)
    far = np.minimum(np.minimum(np.maximum(x0, x1), np.maximum(y0, y1)), box.z1)
    seen = z[rows, cols]
    hit = (near <= far) & (near < seen)
    # The face a ray enters through is the slab it enters last.
    face = np.where(near == box.z0, _BOX_FRONT, np.where(near_y >= near_x, _BOX_TOP, _BOX_SIDE))
    z[rows, cols] = np.where(hit, near, seen)
    surface[rows, cols] = np.where(hit, face, surface[rows, cols])
    box_index[rows, cols] = np.where(hit, index, box_index[rows, cols])


def _image_window(
    room: _Room, corners: np.ndarray, size: int, scale: int
) -> tuple[slice, slice] | None:
    """Pixel rows and columns covering the image of a convex solid or flat shape, from its
    world corners (n, 3), all in front of the camera."""
    x, y, z = corners.T
    u = room.cx + x * room.focal / z
    v = room.cy - (y - room.camera_height) * room.focal / z
    limit = size * scale

    def pixels(low: float, high: float) -> tuple[int, int]:  # inverse of _pixel_coords
        first = int(np.floor((low + 0.5) * scale - 0.5))
        return max(0, first), min(limit, int(np.ceil((high + 0.5) * scale - 0.5)) + 1)

    (r0, r1), (c0, c1) = pixels(v.min(), v.max()), pixels(u.min(), u.max())
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _normalised_depth(z: np.ndarray) -> np.ndarray:
    return np.clip(z / MAX_DEPTH_M, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Room appearance


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


def _render_room(spec: SceneSpec, room: _Room, bg_index: int) -> _RoomImage:
    rng = np.random.default_rng([spec.seed, _ROOM_LOOK, bg_index])
    look = _look(rng, room)
    size = spec.image_size
    albedo, glows = _albedo(look, room, _view(room, size, _BG_SUPERSAMPLE))
    albedo = cv2.resize(albedo, (size, size), interpolation=cv2.INTER_AREA)
    glow = cv2.resize(glows.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    # Light and blotches vary smoothly over a surface: the pixel centres are enough.
    view = _view(room, size, 1)
    s, t = _surface_coords(view)
    blotches = sum(a * np.sin(fs * s + ft * t + p) for a, fs, ft, p in look.blotches.tolist())
    albedo *= 1 + blotches[..., None]
    light = _illumination(look.lights, look.ambient, view.points, view.normals)
    exposure = look.brightness / float(np.median(light[glow < 0.5]))
    light = light * (1 - glow) + glow * (1.15 / exposure)
    noise = rng.standard_normal((size, size, 3), dtype=np.float32) * look.noise_sigma
    rgb = albedo * (light[..., None] * look.tint * exposure) + noise
    return _RoomImage(
        rgb=np.clip(rgb + 0.5, 0, 255).astype(np.uint8),
        noise=noise,
        depth=np.rint(_normalised_depth(view.z) * 255).astype(np.uint8),
        lights=look.lights,
        ambient=look.ambient,
        tint=(look.tint * exposure).astype(np.float32),
    )


def _look(rng: np.random.Generator, room: _Room) -> _Look:
    wall = _jittered(rng, _WALL_COLOURS[rng.integers(len(_WALL_COLOURS))])
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
    ceiling = _ceiling_tiling(rng)
    return _Look(
        floor=_floor_tiling(rng),
        wall=_wall_tiling(rng, wall),
        ceiling=ceiling,
        # Light panels are some of the coffers; a plain ceiling has none.
        ceiling_lights=float(rng.choice([0.0, 0.15, 0.4])) if ceiling.grout else 0.0,
        box_colours=np.array([_box_colour(rng, box, wall) for box in room.boxes]).reshape(-1, 3),
        bands=_wall_bands(rng, wall),
        items=_wall_items(rng, room),
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


def _jittered(rng: np.random.Generator, colour: np.ndarray, amount: float = 0.12) -> np.ndarray:
    return np.clip(colour * rng.uniform(1 - amount, 1 + amount, 3), 0, 255).astype(np.float32)


def _floor_tiling(rng: np.random.Generator) -> _Tiling:
    kind = rng.integers(4)
    angle = float(rng.choice([0.0, np.pi / 2, np.pi / 4]))
    if kind == 0:  # wooden planks, across or along the view
        wood = _jittered(rng, _WOOD_COLOURS[rng.integers(len(_WOOD_COLOURS))])
        size = (rng.uniform(1.0, 3.0), rng.uniform(0.1, 0.22))
        angle = float(rng.choice([0.0, np.pi / 2]))
        return _Tiling(size, 0.37, 0.004, wood[None], wood * 0.55, 0.12, 0.06, angle)
    first, second = (_jittered(rng, c) for c in rng.choice(_FLOOR_COLOURS, 2, replace=False))
    if kind == 1:  # checkerboard tiles
        side = rng.uniform(0.3, 0.8)
        grout = _jittered(rng, np.full(3, 120.0))
        return _Tiling((side, side), 0.0, 0.006, np.stack([first, second]), grout, 0.04, 0, angle)
    if kind == 2:  # stone slabs
        size = (rng.uniform(0.6, 1.2), rng.uniform(0.4, 0.9))
        stagger = float(rng.choice([0.0, 0.5]))
        return _Tiling(size, stagger, 0.01, first[None], first * 0.7, 0.12, 0, angle)
    return _Tiling((1e3, 1e3), 0.0, 0.0, first[None], first, 0.0, 0, 0.0)  # concrete, carpet


def _wall_tiling(rng: np.random.Generator, wall: np.ndarray) -> _Tiling:
    kind = rng.choice(3, p=[0.6, 0.2, 0.2])
    if kind == 1:  # stone blocks
        size = (rng.uniform(0.5, 0.9), rng.uniform(0.25, 0.4))
        return _Tiling(size, 0.5, 0.012, wall[None], wall * 0.75, 0.08, 0, 0.0)
    if kind == 2:  # vertical panels
        size = (rng.uniform(0.8, 2.0), 1e3)
        return _Tiling(size, 0.0, 0.02, wall[None], wall * 0.8, 0.03, 0, 0.0)
    return _Tiling((1e3, 1e3), 0.0, 0.0, wall[None], wall, 0.0, 0, 0.0)


def _ceiling_tiling(rng: np.random.Generator) -> _Tiling:
    white = _jittered(rng, np.full(3, 228.0), 0.06)
    if rng.random() < 0.5:
        return _Tiling((1e3, 1e3), 0.0, 0.0, white[None], white, 0.0, 0, 0.0)
    side = rng.uniform(1.0, 2.5)  # coffers
    return _Tiling((side, side), 0.0, side * 0.12, white[None], white * 0.8, 0.0, 0, 0.0)


def _box_colour(rng: np.random.Generator, box: _Box, wall: np.ndarray) -> np.ndarray:
    if box.height > 2.5:  # pilaster: the wall's colour, a shade lighter or darker
        return np.clip(wall * rng.uniform(0.85, 1.15), 0, 255)
    return _jittered(rng, np.array(rng.choice([235.0, 150.0, 40.0, 120.0])).repeat(3), 0.05)


def _wall_bands(rng: np.random.Generator, wall: np.ndarray) -> tuple[tuple[float, np.ndarray], ...]:
    bands = []
    if rng.random() < 0.35:  # wainscot
        bands.append((rng.uniform(0.8, 1.2), _jittered(rng, wall * rng.uniform(0.6, 0.9))))
    if rng.random() < 0.7:  # skirting board
        bands.append((rng.uniform(0.08, 0.18), _jittered(rng, wall * rng.uniform(0.3, 0.7))))
    return tuple(bands)


def _wall_items(rng: np.random.Generator, room: _Room) -> tuple[_WallItem, ...]:
    """Paintings, doors and windows along each wall, left to right, not overlapping."""
    spans = {_BACK: (-room.left, room.right), _LEFT: (0.5, room.depth), _RIGHT: (0.5, room.depth)}
    items = []
    for surface, (start, end) in spans.items():
        s = start + rng.uniform(0.2, 1.5)
        while True:
            kind = rng.choice(3, p=[0.65, 0.15, 0.2])
            width = rng.uniform(*((0.4, 2.0), (0.9, 1.8), (0.8, 2.0))[kind])
            if s + width > end - 0.2:
                break
            items.append(_wall_item(rng, kind, surface, s, width, room.ceiling))
            s += width + rng.uniform(0.3, 2.0)
    return tuple(items)


def _wall_item(
    rng: np.random.Generator, kind: int, surface: int, s0: float, width: float, ceiling: float
) -> _WallItem:
    frame_colour = _jittered(rng, _FRAME_COLOURS[rng.integers(len(_FRAME_COLOURS))])
    if kind == 0:  # painting, centred around eye height
        height = rng.uniform(0.4, min(1.6, ceiling - 2.0))
        t0 = rng.uniform(1.55, 1.85) - height / 2
        t1, frame, texture = t0 + height, rng.uniform(0.03, 0.1), _painting(rng)
    elif kind == 1:  # door
        t0, t1 = 0.0, rng.uniform(2.0, min(2.6, ceiling - 0.3))
        frame, texture = rng.uniform(0.05, 0.1), _door(rng)
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


def _door(rng: np.random.Generator) -> np.ndarray:
    colour = _jittered(rng, _DOOR_COLOURS[rng.integers(len(_DOOR_COLOURS))])
    texture = np.empty((96, 96, 3), np.float32)
    texture[:] = colour
    darker = tuple(float(c) for c in colour * 0.7)
    cv2.rectangle(texture, (14, 8), (82, 40), darker, 2)
    cv2.rectangle(texture, (14, 50), (82, 88), darker, 2)
    cv2.circle(texture, (86, 48), 3, (200, 180, 90), -1)
    return texture


def _window(rng: np.random.Generator) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, 96, dtype=np.float32)[:, None, None]
    sky_top = _jittered(rng, np.array([150.0, 190.0, 235.0]), 0.08)
    sky_low = _jittered(rng, np.array([225.0, 235.0, 245.0]), 0.05)
    texture = np.broadcast_to(sky_top * (1 - ramp) + sky_low * ramp, (96, 96, 3)).copy()
    columns, rows = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    for i in range(1, columns):
        cv2.line(texture, (96 * i // columns, 0), (96 * i // columns, 95), (40, 40, 40), 3)
    for i in range(1, rows):
        cv2.line(texture, (0, 96 * i // rows), (95, 96 * i // rows), (40, 40, 40), 3)
    return texture


def _surface_coords(view: _View) -> tuple[np.ndarray, np.ndarray]:
    """Texture coordinates (metres) of every pixel on the surface it sees."""
    surface, points = view.surface, view.points
    s = np.where(_S_IS_X[surface], points[..., 0], points[..., 2])
    return s, np.where(_T_IS_Z[surface], points[..., 2], points[..., 1])


def _albedo(look: _Look, room: _Room, view: _View) -> tuple[np.ndarray, np.ndarray]:
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
        ((_FLOOR,), look.floor),
        ((_CEILING,), look.ceiling),
        ((_LEFT, _RIGHT, _BACK), look.wall),
    ):
        where = np.isin(surface, ids)
        colours, tile, joint = _tiles(s[where], t[where], footprint[where], tiling, look.lut)
        albedo[where] = colours
        if ids == (_CEILING,):
            glows[where] = ~joint & (look.lut[tile] > 1 - 2 * look.ceiling_lights)
    on_box = box >= 0
    albedo[on_box] = look.box_colours[box[on_box]]
    walls = np.isin(surface, (_LEFT, _RIGHT, _BACK))
    for height, colour in look.bands:
        albedo[walls & (t < height)] = colour
    for item in look.items:
        window = _image_window(room, _item_corners(room, item), view.size, view.scale)
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


def _item_corners(room: _Room, item: _WallItem) -> np.ndarray:
    s, t = (c.ravel() for c in np.meshgrid([item.s0, item.s1], [item.t0, item.t1]))
    if item.surface == _BACK:
        return np.column_stack([s, t, np.full(4, room.depth)])
    return np.column_stack([np.full(4, -room.left if item.surface == _LEFT else room.right), t, s])


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


def _illumination(
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


# ---------------------------------------------------------------------------------------------
# Figures


def _fg_height(image_size: int) -> int:
    return round(image_size * _FG_HEIGHT_RATIO)


@lru_cache(maxsize=2)
def _figures(spec: SceneSpec) -> tuple[_Figure, ...]:
    return tuple(_render_figure(spec, i) for i in range(1, spec.foregrounds + 1))


def _render_figure(spec: SceneSpec, fg_index: int) -> _Figure:
    rng = np.random.default_rng([spec.seed, _FIGURE, fg_index])
    height = _fg_height(spec.image_size)
    unit = _FIGURE_SUPERSAMPLE * height  # drawing pixels per standing height
    labels = _draw_body(rng, unit)
    colour = _dress(rng, labels, unit)
    ys, xs = np.flatnonzero(labels.any(1)), np.flatnonzero(labels.any(0))
    crop = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
    alpha = (labels[crop] > 0).astype(np.float32)
    layers = np.dstack([colour[crop] * alpha[..., None], alpha])  # premultiplied
    extent_m = rng.uniform(1.55, 1.92) * alpha.shape[0] / unit
    small = _resize_to_height(layers, height)
    coverage = small[..., 3]
    straight = small[..., :3] / np.maximum(coverage, 1e-6)[..., None]
    rgba = np.clip(np.dstack([straight, coverage * 255]) + 0.5, 0, 255).astype(np.uint8)
    master = _resize_to_height(layers, 2 * height)  # sharper source for the larger pastes
    return _Figure(
        master=master,
        mirrored=np.ascontiguousarray(master[:, ::-1]),
        extent_m=float(extent_m),
        png=_png(rgba),
        mask_png=_png(np.where(rgba[..., 3] > 127, 255, 0).astype(np.uint8)),
    )


def _resize_to_height(image: np.ndarray, height: int) -> np.ndarray:
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


_Point = tuple[float, float]  # figure units: x right of the centre line, y down from the head top


class _Canvas:
    """A label image drawn in figure units (1 = standing height), with room above the head for
    a raised hand."""

    def __init__(self, unit: int) -> None:
        self.unit = unit
        self.labels = np.zeros((int(1.45 * unit), int(1.2 * unit)), np.uint8)

    def _px(self, point: _Point) -> tuple[int, int]:
        return round((0.6 + point[0]) * self.unit), round((0.3 + point[1]) * self.unit)

    def limb(self, a: _Point, b: _Point, width: float, label: int) -> None:
        cv2.line(self.labels, self._px(a), self._px(b), label, max(1, round(width * self.unit)))

    def disc(self, centre: _Point, radius: float, label: int) -> None:
        cv2.circle(self.labels, self._px(centre), max(1, round(radius * self.unit)), label, -1)

    def ellipse(self, centre: _Point, axes: tuple[float, float], label: int) -> None:
        size = (round(axes[0] * self.unit), round(axes[1] * self.unit))
        cv2.ellipse(self.labels, self._px(centre), size, 0, 0, 360, label, -1)

    def polygon(self, points: list[_Point], label: int) -> None:
        cv2.fillPoly(self.labels, [np.array([self._px(p) for p in points], np.int32)], label)


def _step(start: _Point, length: float, angle: float, side: int) -> _Point:
    """End of a segment hanging from ``start`` and swung ``angle`` degrees outwards."""
    radians = np.radians(angle)
    return start[0] + side * length * np.sin(radians), start[1] + length * np.cos(radians)


def _draw_body(rng: np.random.Generator, unit: int) -> np.ndarray:
    canvas = _Canvas(unit)
    head = rng.uniform(0.058, 0.068)
    shoulder_y = 2 * head + rng.uniform(0.025, 0.04)
    shoulder, hip = rng.uniform(0.085, 0.125), rng.uniform(0.055, 0.085)
    hip_y = rng.uniform(0.49, 0.54)
    waist = min(shoulder, hip) * rng.uniform(0.8, 0.95)
    arm, leg = rng.uniform(0.035, 0.05), rng.uniform(0.05, 0.075)
    skirt = rng.random() < 0.3
    shorts = not skirt and rng.random() < 0.15
    _draw_legs(rng, canvas, hip, hip_y, leg, skirt, shorts)
    if skirt:
        flare = rng.uniform(0.03, 0.12)
        hem = hip_y + rng.uniform(0.12, 0.3)
        outline = [(-waist, hip_y - 0.06), (waist, hip_y - 0.06), (hip + flare, hem)]
        canvas.polygon([*outline, (-hip - flare, hem)], _BOTTOM)
    waist_y = (shoulder_y + hip_y) / 2 + 0.05
    torso = [(-shoulder, shoulder_y), (shoulder, shoulder_y), (waist, waist_y), (hip, hip_y)]
    canvas.polygon([*torso, (-hip, hip_y), (-waist, waist_y)], _TOP)
    for x in (-shoulder, shoulder):  # round shoulders
        canvas.disc((x * 0.9, shoulder_y + arm * 0.4), arm * 0.6, _TOP)
    if not skirt:  # trousers' waistband
        band = [(-waist, hip_y - 0.05), (waist, hip_y - 0.05), (hip, hip_y + 0.02)]
        canvas.polygon([*band, (-hip, hip_y + 0.02)], _BOTTOM)
    _draw_arms(rng, canvas, shoulder - arm * 0.4, shoulder_y + arm * 0.5, arm)
    _draw_head(rng, canvas, head, shoulder_y)
    return canvas.labels


def _draw_legs(
    rng: np.random.Generator,
    canvas: _Canvas,
    hip: float,
    hip_y: float,
    width: float,
    skirt: bool,
    shorts: bool,
) -> None:
    half = (0.98 - hip_y) / 2  # thigh and shin; straight legs end at the soles
    for side in (-1, 1):
        joint = (side * hip * 0.55, hip_y)
        spread, bend = rng.uniform(-3.0, 12.0), rng.uniform(-8.0, 4.0)
        knee = _step(joint, half, spread, side)
        ankle = _step(knee, half, spread + bend, side)
        canvas.limb(joint, knee, width, _SKIN if skirt else _BOTTOM)
        canvas.limb(knee, ankle, width * 0.85, _SKIN if skirt or shorts else _BOTTOM)
        canvas.limb(ankle, (ankle[0] + side * 0.03, ankle[1] + 0.005), 0.035, _SHOES)


def _draw_arms(
    rng: np.random.Generator, canvas: _Canvas, shoulder: float, shoulder_y: float, width: float
) -> None:
    """One arm hangs; the other takes a pose or carries a bag: the figure and its mirror differ."""
    upper, fore = rng.uniform(0.16, 0.19), rng.uniform(0.13, 0.16)
    short_sleeves = rng.random() < 0.4
    posing = int(rng.choice([-1, 1]))
    pose = int(rng.integers(len(_ARM_POSES)))  # pose 0 (hanging) carries a bag on that side
    for side in (-1, 1):
        upper_range, fore_range = _ARM_POSES[pose if side == posing else 0]
        angles = rng.uniform(*upper_range), rng.uniform(*fore_range)
        start = (side * shoulder, shoulder_y)
        elbow = _step(start, upper, angles[0], side)
        wrist = _step(elbow, fore, angles[0] + angles[1], side)
        sleeve = _SKIN if short_sleeves else _TOP
        canvas.limb(start, elbow, width, sleeve)
        canvas.limb(elbow, wrist, width * 0.85, sleeve)
        if short_sleeves:
            canvas.limb(start, _step(start, upper * 0.45, angles[0], side), width * 1.15, _TOP)
        canvas.disc(_step(wrist, 0.02, angles[0] + angles[1], side), width * 0.6, _SKIN)
        if side == posing and pose == 0:
            _draw_bag(rng, canvas, wrist)


def _draw_bag(rng: np.random.Generator, canvas: _Canvas, hand: _Point) -> None:
    width, height = rng.uniform(0.08, 0.13), rng.uniform(0.08, 0.14)
    top = hand[1] + 0.04
    canvas.limb(hand, (hand[0], top), 0.008, _BAG)
    left, right = hand[0] - width / 2, hand[0] + width / 2
    canvas.polygon([(left, top), (right, top), (right, top + height), (left, top + height)], _BAG)


def _draw_head(rng: np.random.Generator, canvas: _Canvas, head: float, shoulder_y: float) -> None:
    style = rng.integers(4)  # short hair, long hair, bun, bald
    part = rng.uniform(-0.25, 0.25) * head  # an off-centre parting
    if style == 1:
        hem = shoulder_y + rng.uniform(0.0, 0.1)
        outline = [(-head * 0.95, head), (head * 0.95, head), (head * 1.15, hem)]
        canvas.polygon([*outline, (-head * 1.15, hem)], _HAIR)
    canvas.limb((0, 2 * head - 0.01), (0, shoulder_y + 0.01), head * 0.8, _SKIN)
    if style != 3:
        canvas.ellipse((part, head * 0.9), (head * 0.9, head * 0.92), _HAIR)
    if style == 2:
        canvas.disc((part * 2, -head * 0.05), head * 0.45, _HAIR)
    canvas.ellipse((0, head * (1.12 if style != 3 else 1.0)), (head * 0.78, head * 0.9), _SKIN)


def _dress(rng: np.random.Generator, labels: np.ndarray, unit: int) -> np.ndarray:
    """RGB of the drawn figure: a colour per label, stripes, and soft volume shading."""
    palette = np.zeros((7, 3), np.float32)
    palette[_SKIN] = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.95, 1.05)
    palette[_HAIR] = _jittered(rng, _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))])
    palette[_TOP], palette[_BOTTOM], palette[_BAG] = (_clothing_colour(rng) for _ in range(3))
    palette[_SHOES] = _jittered(rng, np.full(3, rng.uniform(20, 90)))
    colour = palette[labels]
    rows = np.arange(labels.shape[0])[:, None]
    if rng.random() < 0.3:  # striped top
        stripes = (rows // max(1, round(rng.uniform(0.01, 0.03) * unit))) % 2 == 1
        colour[(labels == _TOP) & stripes] = _clothing_colour(rng)
    alpha = (labels > 0).astype(np.float32)
    rounding = cv2.GaussianBlur(alpha, (0, 0), 0.03 * unit)  # darker towards the outline
    across = (np.arange(labels.shape[1]) / unit - 0.6)[None, :]
    shade = (0.7 + 0.3 * rounding) * (1 + rng.uniform(-0.25, 0.25) * across)
    fabric = rng.normal(1.0, 0.03, labels.shape).astype(np.float32)
    return np.clip(colour * (shade * fabric)[..., None], 0, 255)


def _clothing_colour(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.4:
        return _jittered(rng, _NEUTRAL_CLOTHES[rng.integers(len(_NEUTRAL_CLOTHES))], 0.1)
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(80, 230), rng.uniform(70, 240)]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
