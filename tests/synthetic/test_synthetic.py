from __future__ import annotations

import hashlib
import io
import itertools
from dataclasses import replace

import cv2
import numpy as np
import pytest
from PIL import Image

from depthseg.core.params import ParamsError, SyntheticParams, parse_params
from depthseg.data import layout
from depthseg.synthetic import SceneSpec, generate, placement_geometry, room_depth
from depthseg.synthetic.look import render_room
from depthseg.synthetic.room import room_geometry

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
        ("figure_fraction", (0.5, 0.5)),
        ("figure_fraction", (0.01, 0.5)),
        ("figure_fraction", (0.3, 0.5, 0.7)),
        ("light_gain", (1.2, 1.0)),
        ("light_gain", (0.5, 5.0)),
        ("light_gain", "ab"),
        ("palette", "neon"),
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


# --- knobs: figure_fraction, light_gain, palette ------------------------------------------------

KNOBS = SceneSpec(backgrounds=2, foregrounds=1, placements=2, image_size=64, seed=5)
# Folders that light and palette leave alone: figures, scene masks and depth maps.
UNCHANGED_BY_LOOKS = (layout.FG_DIR, layout.FG_MASK_DIR, layout.MASK_DIR, layout.DEPTH_DIR)


@pytest.fixture(scope="module")
def knobs_default() -> dict[str, bytes]:
    return collect(KNOBS)


def members(files: dict[str, bytes], folder: str) -> dict[str, bytes]:
    found = {name: data for name, data in files.items() if name.startswith(f"{folder}/")}
    assert found, folder
    return found


def mask_areas(files: dict[str, bytes]) -> list[int]:
    masks = members(files, layout.MASK_DIR)
    return [int((decode(data) > 127).sum()) for _, data in sorted(masks.items())]


def background_means(files: dict[str, bytes]) -> list[float]:
    backgrounds = members(files, layout.BG_DIR)
    return [float(decode(data).mean()) for _, data in sorted(backgrounds.items())]


def release_digest(files: dict[str, bytes]) -> str:
    """sha256 over every member's name and the sha256 of its bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0".encode() + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


# The bytes the generator gives with its default knobs. A change to the drawing, the random draws
# or the pinned encoders (opencv, pillow) changes them; then every cached dataset, index and
# metric of the built-in data changes too. Update these only for a change meant to do that, and
# say so in CHANGELOG.md.
RELEASE_DIGESTS = {
    KNOBS: "c53cff7f46a87da0d12c07502a806ac9cbb9ab8c20ad57590ce219477756f569",
    SMALL: "fc176b90777f8981e503d11a926ce8a6ae43e717da56a0794e087036ebef8fdb",
}


@pytest.mark.parametrize("spec", RELEASE_DIGESTS, ids=["knobs", "small"])
def test_a_small_release_keeps_its_stored_hash(spec: SceneSpec) -> None:
    assert release_digest(collect(spec)) == RELEASE_DIGESTS[spec]


def test_synthetic_params_default_to_the_specs_knobs() -> None:
    from_params = SceneSpec(
        **SyntheticParams(
            backgrounds=2, foregrounds=1, placements=2, image_size=64, seed=5
        ).model_dump()
    )
    assert from_params == KNOBS  # params' defaults are the spec's, lists become tuples
    assert hash(from_params) == hash(KNOBS)


def test_lower_figure_fraction_gives_smaller_figures(knobs_default: dict[str, bytes]) -> None:
    small = collect(replace(KNOBS, figure_fraction=(0.15, 0.25)))
    default_areas, small_areas = mask_areas(knobs_default), mask_areas(small)
    assert max(small_areas) < min(default_areas), (small_areas, default_areas)
    size = KNOBS.image_size
    assert all(h <= 0.25 * size + 1 for *_, h in bboxes(small).values())
    assert all(h >= 0.33 * size - 1 for *_, h in bboxes(knobs_default).values())


@pytest.mark.parametrize(("gain", "darker"), [((0.5, 0.6), True), ((1.2, 1.6), False)])
def test_light_gain_changes_the_light_and_nothing_else(
    knobs_default: dict[str, bytes], gain: tuple[float, float], darker: bool
) -> None:
    lit = collect(replace(KNOBS, light_gain=gain))
    for default_mean, lit_mean in zip(
        background_means(knobs_default), background_means(lit), strict=True
    ):
        if darker:
            assert lit_mean < 0.8 * default_mean, (lit_mean, default_mean)
        else:
            assert lit_mean > 1.1 * default_mean, (lit_mean, default_mean)
    # The gain has its own random stream: geometry, figures, placements and masks stay.
    for folder in UNCHANGED_BY_LOOKS:
        assert members(lit, folder) == members(knobs_default, folder), folder
    assert lit[layout.BBOX_FILE] == knobs_default[layout.BBOX_FILE]


def test_light_gain_scales_the_light_without_shifting_other_draws() -> None:
    # Same room, same look and the same sensor noise: only the light is scaled, by exactly 0.5.
    room = room_geometry(KNOBS, 1)
    plain = render_room(KNOBS, room, 1)
    halved = render_room(replace(KNOBS, light_gain=(0.5, 0.5)), room, 1)
    assert np.array_equal(halved.noise, plain.noise)
    np.testing.assert_allclose(halved.tint, plain.tint * 0.5, rtol=1e-6)
    lit = plain.rgb.astype(np.float32) - plain.noise
    unclipped = (plain.rgb < 255).all(-1) & (halved.rgb > 0).all(-1)
    expected = lit * 0.5 + plain.noise
    assert unclipped.mean() > 0.5
    assert np.abs(halved.rgb - expected)[unclipped].max() <= 1.0


def test_alternate_palette_changes_the_colours_only(knobs_default: dict[str, bytes]) -> None:
    alternate = collect(replace(KNOBS, palette="alternate"))
    for name, data in members(knobs_default, layout.BG_DIR).items():
        difference = np.abs(decode(alternate[name]).astype(int) - decode(data).astype(int))
        assert difference.mean() > 10, (name, difference.mean())
    for folder in UNCHANGED_BY_LOOKS:
        assert members(alternate, folder) == members(knobs_default, folder), folder
    assert alternate[layout.BBOX_FILE] == knobs_default[layout.BBOX_FILE]


@pytest.mark.parametrize(
    ("synthetic", "key"),
    [
        ({"figure_fraction": [0.6, 0.4]}, "data.synthetic.figure_fraction"),
        ({"figure_fraction": [0.4, 0.4]}, "data.synthetic.figure_fraction"),
        ({"figure_fraction": [0.01, 0.4]}, "data.synthetic.figure_fraction.0"),
        ({"figure_fraction": [0.4]}, "data.synthetic.figure_fraction"),
        ({"light_gain": [1.5, 1.0]}, "data.synthetic.light_gain"),
        ({"light_gain": [1.0, 9.0]}, "data.synthetic.light_gain.1"),
        ({"palette": "neon"}, "data.synthetic.palette"),
    ],
)
def test_invalid_knob_params_name_the_key(synthetic: dict[str, object], key: str) -> None:
    with pytest.raises(ParamsError) as caught:
        parse_params({"data": {"synthetic": synthetic}}, source="params.yaml")
    assert str(caught.value).startswith(f"params.yaml: {key}: "), str(caught.value)


def test_valid_knob_params_reach_the_spec() -> None:
    raw = {"figure_fraction": [0.2, 0.3], "light_gain": [1, 1.5], "palette": "alternate"}
    params = parse_params({"data": {"synthetic": raw}})
    spec = SceneSpec(**params.data.synthetic.model_dump())
    assert (spec.figure_fraction, spec.light_gain, spec.palette) == (
        (0.2, 0.3),
        (1.0, 1.5),
        "alternate",
    )
