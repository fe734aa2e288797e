from __future__ import annotations

import io
import itertools
from dataclasses import replace

import cv2
import numpy as np
import pytest
from PIL import Image

from depthseg.data import layout
from depthseg.synthetic import SceneSpec, generate, placement_geometry, room_depth

SMALL = SceneSpec(backgrounds=3, foregrounds=2, placements=4, image_size=64, seed=3)
# Geometry checks run at the release's size, where JPEG blocks are small next to the figures.
FULL = SceneSpec(backgrounds=3, foregrounds=3, placements=6, image_size=224, seed=11)
JPEG_TOLERANCE = 3  # grey levels


def collect(spec: SceneSpec, **kwargs: object) -> dict[str, bytes]:
    files: dict[str, bytes] = {}

    def write(name: str, data: bytes) -> None:
        assert name not in files, f"{name} written twice"
        files[name] = data

    assert generate(spec, write, **kwargs) == spec.scenes
    return files


@pytest.fixture(scope="module")
def small() -> dict[str, bytes]:
    return collect(SMALL)


@pytest.fixture(scope="module")
def full() -> dict[str, bytes]:
    return collect(FULL)


def scenes_of(spec: SceneSpec) -> list[tuple[int, int, int, str]]:
    return [
        (b, f, k, layout.scene_name(layout.bg_name(b), layout.fg_name(f), k))
        for b in range(1, spec.backgrounds + 1)
        for f in range(1, spec.foregrounds + 1)
        for k in range(1, spec.placements + 1)
    ]


def decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def bboxes(files: dict[str, bytes]) -> dict[str, tuple[int, int, int, int]]:
    rows = [line.split("\t") for line in files[layout.BBOX_FILE].decode().splitlines()]
    return {name.removesuffix(".jpeg"): tuple(map(int, box)) for name, *box in rows}


# --- layout -------------------------------------------------------------------------------------


def test_members_are_exactly_the_release_layout(small: dict[str, bytes]) -> None:
    expected = {layout.FILE_MAP, layout.BBOX_FILE}
    for b in range(1, SMALL.backgrounds + 1):
        expected.add(layout.bg_member(layout.bg_name(b)))
    for f in range(1, SMALL.foregrounds + 1):
        expected |= {layout.fg_member(layout.fg_name(f)), layout.fg_mask_member(layout.fg_name(f))}
    for *_, scene in scenes_of(SMALL):
        expected |= {
            layout.scene_member(scene),
            layout.mask_member(f"{scene}_mask"),
            layout.depth_member(f"{scene}_depth_map"),
        }
    assert set(small) == expected


def test_file_map_and_bbox_lines_parse_like_the_release(small: dict[str, bytes]) -> None:
    file_map = small[layout.FILE_MAP].decode()
    bbox = small[layout.BBOX_FILE].decode()
    assert file_map.endswith("\n") and bbox.endswith("\n")
    map_rows = [line.split("\t") for line in file_map.splitlines()]
    bbox_rows = [line.split("\t") for line in bbox.splitlines()]
    assert len(map_rows) == len(bbox_rows) == SMALL.scenes
    for (bg, scene, mask, depth), (name, *box), (*_, expected) in zip(
        map_rows, bbox_rows, scenes_of(SMALL), strict=True
    ):
        match = layout.SCENE_PATTERN.match(scene)
        assert match and match["bg"] == bg and scene == expected
        assert (mask, depth) == (f"{scene}_mask", f"{scene}_depth_map")
        assert name == f"{scene}.jpeg"
        x, y, w, h = map(int, box)
        assert w > 0 and h > 0 and x >= 0 and y >= 0


def test_images_decode_with_the_release_modes_and_sizes(small: dict[str, bytes]) -> None:
    size, fg_height = SMALL.image_size, round(SMALL.image_size * 108 / 224)

    def opened(name: str, fmt: str, mode: str) -> Image.Image:
        image = Image.open(io.BytesIO(small[name]))
        assert (image.format, image.mode) == (fmt, mode), name
        return image

    bg = opened(layout.bg_member("bg001"), "JPEG", "RGB")
    assert bg.size == (size, size)
    for f in range(1, SMALL.foregrounds + 1):
        fg = opened(layout.fg_member(layout.fg_name(f)), "PNG", "RGBA")
        mask = opened(layout.fg_mask_member(layout.fg_name(f)), "PNG", "L")
        assert fg.size == mask.size and fg.height == fg_height
        alpha = np.asarray(fg)[..., 3]
        assert set(np.unique(np.asarray(mask))) == {0, 255}
        assert np.array_equal(np.asarray(mask) == 255, alpha > 127)
    for *_, scene in scenes_of(SMALL)[:3]:
        assert opened(layout.scene_member(scene), "JPEG", "RGB").size == (size, size)
        assert opened(layout.mask_member(f"{scene}_mask"), "JPEG", "L").size == (size, size)
        depth = opened(layout.depth_member(f"{scene}_depth_map"), "JPEG", "L")
        assert depth.size == (size, size)


# --- determinism --------------------------------------------------------------------------------


def test_same_spec_gives_the_same_bytes_with_any_number_of_workers(
    small: dict[str, bytes],
) -> None:
    reported: list[int] = []
    again = collect(SMALL, workers=2, progress=reported.append)
    assert list(again) == list(small)  # same write order too
    assert again == small
    assert sum(reported) == SMALL.scenes


def test_another_seed_gives_other_rooms_figures_and_scenes(small: dict[str, bytes]) -> None:
    other = collect(replace(SMALL, seed=SMALL.seed + 1))
    for name in (layout.bg_member("bg001"), layout.fg_member("fg001"), layout.BBOX_FILE):
        assert other[name] != small[name]


# --- geometry -----------------------------------------------------------------------------------


def test_second_half_of_the_placements_pastes_the_mirrored_figure(full: dict[str, bytes]) -> None:
    half = FULL.placements // 2
    boxes = bboxes(full)
    for b, f, k, scene in scenes_of(FULL):
        assert placement_geometry(FULL, b, f, k).flipped == (k > half)
        fg_mask = decode(full[layout.fg_mask_member(layout.fg_name(f))]) > 127
        x, y, w, h = boxes[scene]
        pasted = decode(full[layout.mask_member(f"{scene}_mask")])[y : y + h, x : x + w]
        pasted = cv2.resize(pasted, fg_mask.shape[::-1], interpolation=cv2.INTER_AREA) > 127
        plain, mirrored = iou(pasted, fg_mask), iou(pasted, fg_mask[:, ::-1])
        assert (mirrored > plain) == (k > half), (scene, plain, mirrored)
        assert max(plain, mirrored) > 0.75, scene


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_mask_bbox_and_depth_agree_with_the_geometry(full: dict[str, bytes]) -> None:
    size = FULL.image_size
    boxes = bboxes(full)
    kernel = np.ones((3, 3), np.uint8)
    figure_pixels = 0
    for b, f, k, scene in scenes_of(FULL):
        place = placement_geometry(FULL, b, f, k)
        x, y, w, h = boxes[scene]
        assert x >= 0 and y >= 0 and x + w <= size and y + h <= size
        assert place.left <= x and x + w <= place.left + place.width
        assert place.top <= y and abs(y + h - 1 - place.foot_row) <= 1
        assert 0.25 * size <= h <= 0.6 * size

        mask = decode(full[layout.mask_member(f"{scene}_mask")]) > 127
        rows, cols = np.nonzero(mask)
        assert rows.min() >= y - 1 and rows.max() <= y + h and cols.min() >= x - 1
        assert cols.max() <= x + w

        room = room_depth(FULL, b)
        floor_at_feet = room[place.foot_row, round(place.foot_col)]
        assert floor_at_feet == pytest.approx(place.depth)
        depth = decode(full[layout.depth_member(f"{scene}_depth_map")]).astype(int)
        # Only JPEG blocks with no edge in them hold their values to within a few grey levels.
        figure = whole_blocks(mask)
        figure_pixels += figure.sum()
        assert np.abs(depth[figure] - floor_at_feet * 255).max(initial=0) <= JPEG_TOLERANCE
        smooth = cv2.dilate(room, kernel, iterations=4) - cv2.erode(room, kernel, iterations=4)
        background = whole_blocks(~mask & (smooth < 10 / 255))
        assert background.mean() > 0.4
        assert np.abs(depth[background] - room[background] * 255).max() <= JPEG_TOLERANCE
    assert figure_pixels > 0


def whole_blocks(selected: np.ndarray) -> np.ndarray:
    """The pixels of the 8x8 JPEG blocks that lie wholly inside ``selected``."""
    h, w = selected.shape
    blocks = selected.reshape(h // 8, 8, w // 8, 8).all(axis=(1, 3))
    return np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)


def test_farther_placements_give_smaller_figures_higher_up(full: dict[str, bytes]) -> None:
    boxes = bboxes(full)
    for b in range(1, FULL.backgrounds + 1):
        for f in range(1, FULL.foregrounds + 1):
            scenes = [s for bb, ff, _, s in scenes_of(FULL) if (bb, ff) == (b, f)]
            places = [placement_geometry(FULL, b, f, k) for k in range(1, FULL.placements + 1)]
            by_distance = sorted(zip(places, scenes, strict=True), key=lambda p: p[0].distance_m)
            heights = [boxes[s][3] for _, s in by_distance]
            feet = [p.foot_row for p, _ in by_distance]
            assert all(a >= b - 1 for a, b in itertools.pairwise(heights)), heights
            assert feet == sorted(feet, reverse=True)
            assert by_distance[0][0].depth <= by_distance[-1][0].depth


def test_room_depth_is_normalised_and_dark_near_the_camera() -> None:
    depth = room_depth(FULL, 1)
    assert depth.shape == (FULL.image_size, FULL.image_size)
    assert depth.min() >= 0.0 and depth.max() <= 1.0
    column = depth[:, FULL.image_size // 2]
    assert column[-1] < column[FULL.image_size // 2]  # the floor at the bottom is nearest


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("backgrounds", 0),
        ("foregrounds", 1000),
        ("placements", 3),
        ("placements", 0),
        ("image_size", 16),
        ("seed", -1),
        ("backgrounds", 2.5),
    ],
)
def test_invalid_spec_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SceneSpec(**{field: value})


def test_invalid_workers_and_indices_are_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        generate(SMALL, lambda name, data: None, workers=0)
    with pytest.raises(ValueError, match="bg_index"):
        room_depth(SMALL, SMALL.backgrounds + 1)
    with pytest.raises(ValueError, match="placement"):
        placement_geometry(SMALL, 1, 1, 0)
