"""Room geometry: the box-shaped room and its pilasters and plinths, ray casting from a level
pinhole camera, and the exact depth map (``room_depth``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from depthseg.synthetic.spec import MAX_DEPTH_M, ROOM_GEOMETRY, SceneSpec, check_range

# Surfaces a ray can hit.
FLOOR, CEILING, LEFT, RIGHT, BACK, BOX_SIDE, BOX_TOP, BOX_FRONT = range(8)
_NORMALS = np.array(
    [[0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, -1], [0, 0, 0], [0, 1, 0], [0, 0, -1]],
    np.float32,
)  # the box side's x sign depends on the ray and is filled in per pixel


@dataclass(frozen=True)
class Box:
    """An axis-aligned block standing on the floor (pilaster, plinth, bench)."""

    x0: float
    x1: float
    height: float
    z0: float
    z1: float


@dataclass(frozen=True)
class Room:
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
    boxes: tuple[Box, ...]


def room_depth(spec: SceneSpec, bg_index: int) -> np.ndarray:
    """The exact depth map of a background room, float in [0, 1] (distance / MAX_DEPTH_M)."""
    check_range("bg_index", bg_index, 1, spec.backgrounds)
    return normalised_depth(_cast(room_geometry(spec, bg_index), spec.image_size, 1)[0])


@lru_cache(maxsize=64)
def room_geometry(spec: SceneSpec, bg_index: int) -> Room:
    rng = np.random.default_rng([spec.seed, ROOM_GEOMETRY, bg_index])
    size = spec.image_size
    # One lens and a camera held near eye level in every room, as one photographer would: with
    # focal length and height both free, absolute depth could not be told from a single image.
    focal = size * 0.78  # horizontal field of view 65 degrees
    camera_height = rng.uniform(1.45, 1.75)
    depth = rng.uniform(10.0, 18.0)
    ceiling = rng.uniform(max(3.2, camera_height + 1.2), 7.0)
    # The tallest figure extent (raised arm) is below 2.4 m: it shrinks below the smallest
    # figure fraction by this distance, so no figure stands beyond it.
    figure_zone = min(depth - 1.5, 2.4 * focal / (spec.figure_fraction[0] * size))
    left, right = rng.uniform(2.5, 7.0, 2)
    boxes = _pilasters(rng, left, right, depth, ceiling) + _plinths(
        rng, left, right, depth, figure_zone
    )
    return Room(
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
) -> tuple[Box, ...]:
    if rng.random() < 0.5:
        return ()
    spacing, width, protrusion = rng.uniform(2.0, 4.0), rng.uniform(0.3, 0.6), rng.uniform(0.1, 0.3)
    starts = np.arange(rng.uniform(0.5, spacing), depth - width, spacing)
    return tuple(
        Box(x0, x0 + protrusion, ceiling, z, z + width)
        for z in starts
        for x0 in (-left, right - protrusion)
    )


def _plinths(
    rng: np.random.Generator, left: float, right: float, depth: float, figure_zone: float
) -> tuple[Box, ...]:
    boxes = []
    for _ in range(rng.integers(0, 4)):
        bench = rng.random() < 0.3
        width = rng.uniform(1.5, 3.0) if bench else rng.uniform(0.4, 1.0)
        length = rng.uniform(0.4, 0.6) if bench else rng.uniform(0.4, 1.0)
        height = rng.uniform(0.4, 0.5) if bench else rng.uniform(0.6, 1.2)
        z0 = rng.uniform(figure_zone + 0.3, depth)
        x0 = rng.uniform(-left, right - width)
        if z0 + length <= depth:
            boxes.append(Box(x0, x0 + width, height, z0, z0 + length))
    return tuple(boxes)


def _pixel_coords(size: int, scale: int) -> np.ndarray:
    """Image coordinates of the pixel centres of a ``scale`` times supersampled grid."""
    return (np.arange(size * scale) + 0.5) / scale - 0.5


def _ray_slopes(room: Room, size: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column X/Z and per row Y/Z of the pixels' viewing rays (Y up)."""
    coords = _pixel_coords(size, scale)
    return ((coords - room.cx) / room.focal)[None, :], ((room.cy - coords) / room.focal)[:, None]


@dataclass(frozen=True)
class View:
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


def room_view(room: Room, size: int, scale: int) -> View:
    z, surface, box = _cast(room, size, scale)
    dx, dy = _ray_slopes(room, size, scale)
    points = np.empty((*z.shape, 3), np.float32)
    points[..., 2] = z
    points[..., 0] = points[..., 2] * dx.astype(np.float32)
    points[..., 1] = points[..., 2] * dy.astype(np.float32) + room.camera_height
    normals = _NORMALS[surface]
    side = surface == BOX_SIDE
    normals[side, 0] = -np.sign(np.broadcast_to(dx, z.shape)[side])
    return View(z, surface, box, points, normals, dx, dy, size, scale)


def _cast(room: Room, size: int, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance z along the view, surface id and box index (-1: none) of what each pixel sees."""
    dx, dy = _ray_slopes(room, size, scale)
    with np.errstate(divide="ignore"):
        # Floor and ceiling depend on the row only, side walls on the column only.
        floor = np.where(dy < 0, room.camera_height / -dy, np.inf)
        ceiling = np.where(dy > 0, (room.ceiling - room.camera_height) / dy, np.inf)
        left = np.where(dx < 0, room.left / -dx, np.inf)
        right = np.where(dx > 0, room.right / dx, np.inf)
    row_z = np.minimum(floor, ceiling)
    row_surface = np.where(floor < ceiling, FLOOR, CEILING)
    col_z = np.minimum(left, right)
    col_surface = np.where(left < right, LEFT, RIGHT)
    nearest = np.minimum(row_z, col_z)
    z = np.minimum(nearest, room.depth)
    surface = np.where(row_z <= col_z, row_surface, col_surface)
    surface = np.where(nearest >= room.depth, BACK, surface).astype(np.int8)
    box = np.full(z.shape, -1, np.int16)
    for index in range(len(room.boxes)):
        _cast_box(room, index, size, scale, dx[0], dy[:, 0], (z, surface, box))
    return z, surface, box


def _cast_box(
    room: Room,
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
    window = image_window(room, corners.reshape(-1, 3), size, scale)
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
    face = np.where(near == box.z0, BOX_FRONT, np.where(near_y >= near_x, BOX_TOP, BOX_SIDE))
    z[rows, cols] = np.where(hit, near, seen)
    surface[rows, cols] = np.where(hit, face, surface[rows, cols])
    box_index[rows, cols] = np.where(hit, index, box_index[rows, cols])


def image_window(
    room: Room, corners: np.ndarray, size: int, scale: int
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


def normalised_depth(z: np.ndarray) -> np.ndarray:
    return np.clip(z / MAX_DEPTH_M, 0.0, 1.0)
