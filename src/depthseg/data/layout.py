"""Names and formats of the MODEST Museum release, shared by every reader and writer.

A scene ``bg001_fg001_01`` is foreground ``fg001`` pasted on background ``bg001`` at placement
``01``; placements ``01..20`` use the foreground as is and ``21..40`` its horizontal mirror.
"""

from __future__ import annotations

import re

FILE_MAP = "file_map.txt"
BBOX_FILE = "bbox.txt"

BG_DIR = "bg"
FG_DIR = "fg"
FG_MASK_DIR = "fg_mask"
SCENE_DIR = "bg_fg"
MASK_DIR = "bg_fg_mask"
DEPTH_DIR = "bg_fg_depth_map"

#: Every folder of the release, in the order the release lists them.
FOLDERS = (BG_DIR, FG_DIR, FG_MASK_DIR, SCENE_DIR, MASK_DIR, DEPTH_DIR)
#: What a file in those folders may be called: the release's JPEGs and PNGs.
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")

#: Per-channel statistics published with the release, used to normalise the two inputs.
BG_MEAN = (0.40086, 0.46599, 0.53281)
BG_STD = (0.25451, 0.24249, 0.23615)
BG_FG_MEAN = (0.41221, 0.47368, 0.53431)
BG_FG_STD = (0.25699, 0.24577, 0.24217)

SCENE_PATTERN = re.compile(r"^(?P<bg>bg\d+)_(?P<fg>fg\d+)_(?P<placement>\d+)$")


def bg_name(index: int) -> str:
    return f"bg{index:03d}"


def fg_name(index: int) -> str:
    return f"fg{index:03d}"


def scene_name(bg: str, fg: str, placement: int) -> str:
    return f"{bg}_{fg}_{placement:02d}"


def bg_member(bg: str) -> str:
    return f"{BG_DIR}/{bg}.jpeg"


def fg_member(fg: str) -> str:
    return f"{FG_DIR}/{fg}.png"


def fg_mask_member(fg: str) -> str:
    return f"{FG_MASK_DIR}/{fg}_mask.png"


def scene_member(scene: str) -> str:
    return f"{SCENE_DIR}/{scene}.jpeg"


def mask_member(mask: str) -> str:
    """``mask`` is the name file_map.txt gives, e.g. ``bg001_fg001_01_mask``."""
    return f"{MASK_DIR}/{mask}.jpeg"


def depth_member(depth: str) -> str:
    """``depth`` is the name file_map.txt gives, e.g. ``bg001_fg001_01_depth_map``."""
    return f"{DEPTH_DIR}/{depth}.jpeg"


#: The four images of a scene: index column prefix -> member path of the name file_map.txt gives.
IMAGE_KINDS = {
    "bg": bg_member,
    "bg_fg": scene_member,
    "mask": mask_member,
    "depth": depth_member,
}
