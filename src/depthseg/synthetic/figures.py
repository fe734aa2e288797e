"""The foregrounds: drawn person-like figures (body, legs, arms, head, dress and colours),
rendered once per spec as fg/ cut-outs and as sources to paste into scenes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from depthseg.synthetic.encoding import png
from depthseg.synthetic.spec import FIGURE, SceneSpec, jittered

_FG_HEIGHT_RATIO = 108 / 224  # the release's cut-outs are 108 px tall in 224 px scenes
_FIGURE_SUPERSAMPLE = 4  # figures are drawn at 4x their fg/ height for a clean alpha edge

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
class Figure:
    master: np.ndarray  # float32 (h, w, 4): premultiplied RGB and alpha, 2x the fg/ size
    mirrored: np.ndarray  # the same, flipped left-right
    extent_m: float  # real height of the drawn extent (head or raised hand to soles)
    png: bytes
    mask_png: bytes


def _fg_height(image_size: int) -> int:
    return round(image_size * _FG_HEIGHT_RATIO)


@lru_cache(maxsize=2)
def figures(spec: SceneSpec) -> tuple[Figure, ...]:
    return tuple(_render_figure(spec, i) for i in range(1, spec.foregrounds + 1))


def _render_figure(spec: SceneSpec, fg_index: int) -> Figure:
    rng = np.random.default_rng([spec.seed, FIGURE, fg_index])
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
    return Figure(
        master=master,
        mirrored=np.ascontiguousarray(master[:, ::-1]),
        extent_m=float(extent_m),
        png=png(rgba),
        mask_png=png(np.where(rgba[..., 3] > 127, 255, 0).astype(np.uint8)),
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
    palette[_HAIR] = jittered(rng, _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))])
    palette[_TOP], palette[_BOTTOM], palette[_BAG] = (_clothing_colour(rng) for _ in range(3))
    palette[_SHOES] = jittered(rng, np.full(3, rng.uniform(20, 90)))
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
        return jittered(rng, _NEUTRAL_CLOTHES[rng.integers(len(_NEUTRAL_CLOTHES))], 0.1)
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(80, 230), rng.uniform(70, 240)]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
