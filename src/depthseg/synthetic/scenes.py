"""Scenes: where each figure stands in each room, compositing it into the room image, and
``generate``, which renders every background (in worker processes if asked) and writes the
members of the layout.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from depthseg.data import layout
from depthseg.synthetic.encoding import jpeg
from depthseg.synthetic.figures import Figure, figures
from depthseg.synthetic.look import RoomImage, illumination, render_room
from depthseg.synthetic.room import Room, room_geometry
from depthseg.synthetic.spec import MAX_DEPTH_M, PLACEMENT, Placement, SceneSpec, check_range

_SIDE_MARGIN_M = 0.45  # feet stay this far from the side walls (pilasters protrude up to 0.3 m)


@dataclass(frozen=True)
class _Chunk:
    """Everything one background contributes, returned from a worker to the writing process."""

    members: list[tuple[str, bytes]]
    file_map: list[str]
    bbox: list[str]


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
    for fg_index, figure in enumerate(figures(spec), start=1):
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


def placement_geometry(spec: SceneSpec, bg_index: int, fg_index: int, placement: int) -> Placement:
    """Where scene ``bgNNN_fgNNN_KK`` (1-based indices) stands its figure."""
    check_range("bg_index", bg_index, 1, spec.backgrounds)
    check_range("fg_index", fg_index, 1, spec.foregrounds)
    check_range("placement", placement, 1, spec.placements)
    figure = figures(spec)[fg_index - 1]
    return _placements(spec, room_geometry(spec, bg_index), figure, bg_index, fg_index)[
        placement - 1
    ]


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
    room = room_geometry(spec, bg_index)
    image = render_room(spec, room, bg_index)
    bg = layout.bg_name(bg_index)
    chunk = _Chunk([(layout.bg_member(bg), jpeg(image.rgb))], [], [])
    for fg_index, figure in enumerate(figures(spec), start=1):
        placements = _placements(spec, room, figure, bg_index, fg_index)
        gains = _figure_gains(room, image, placements)
        for k, (placement, gain) in enumerate(zip(placements, gains, strict=True), start=1):
            scene, mask, depth, (x, y, w, h) = _composite(image, figure, placement, gain)
            name = layout.scene_name(bg, layout.fg_name(fg_index), k)
            mask_name, depth_name = f"{name}_mask", f"{name}_depth_map"
            chunk.members.append((layout.scene_member(name), jpeg(scene)))
            chunk.members.append((layout.mask_member(mask_name), jpeg(mask)))
            chunk.members.append((layout.depth_member(depth_name), jpeg(depth)))
            chunk.file_map.append(f"{bg}\t{name}\t{mask_name}\t{depth_name}\n")
            chunk.bbox.append(f"{layout.scene_member(name).split('/')[-1]}\t{x}\t{y}\t{w}\t{h}\n")
    return chunk


def _placements(
    spec: SceneSpec, room: Room, figure: Figure, bg_index: int, fg_index: int
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
    placeable = (rows - heights >= 0) & (distance <= room.figure_zone) & (x_lo <= x_hi)
    low, high = spec.figure_fraction
    candidates = np.flatnonzero(placeable & (heights >= low * size) & (heights <= high * size))
    if not candidates.size:
        fractions = heights[placeable] / size
        span = f"{fractions.min():.2f} to {fractions.max():.2f}" if fractions.size else "none"
        raise RuntimeError(
            f"no room for fg {fg_index} in bg {bg_index}: its height there can be {span} of "
            f"the image's, outside figure_fraction {list(spec.figure_fraction)}: {room}"
        )
    placements = []
    for k in range(1, spec.placements + 1):
        rng = np.random.default_rng([spec.seed, PLACEMENT, bg_index, fg_index, k])
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


def _figure_gains(room: Room, image: RoomImage, placements: list[Placement]) -> np.ndarray:
    """RGB gain (n, 3) that lights each placed figure like the room's lights reach its chest."""
    chests = np.array(
        [
            [(p.foot_col - room.cx) * p.distance_m / room.focal, 1.2, p.distance_m]
            for p in placements
        ]
    )
    light = illumination(image.lights, image.ambient, chests, None)
    return (light[:, None] * image.tint).astype(np.float32)


def _composite(
    image: RoomImage, figure: Figure, placement: Placement, gain: np.ndarray
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
