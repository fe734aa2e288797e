"""Turn the release's file map into a table of scenes with byte ranges and a split.

One row per scene: the four images (member name, header offset and size inside the stored zip),
background id, foreground id, placement, bounding box and split. Existence is checked against the
archive's central directory, the one listing of every folder, never with a stat per file.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from depthseg.core.errors import DepthsegError
from depthseg.core.files import replaced_atomically
from depthseg.core.params import IndexParams, SplitParams
from depthseg.data import layout
from depthseg.data.archive import Member, MemberReader, read_members
from depthseg.data.verify import verify_images

SPLITS = ("train", "val", "test")
EXAMPLES_SHOWN = 3
_METADATA_KEY = b"depthseg"


class IndexError_(DepthsegError, ValueError):
    """The file map cannot be indexed as asked; the message lists what is wrong."""


@dataclass
class Problems:
    """Problems found in the file map, by kind, with a few examples of each."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES_SHOWN:
            shown.append(example)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def describe(self) -> str:
        return "\n".join(
            f"  {kind}: {count} (e.g. {'; '.join(self.examples[kind])})"
            for kind, count in sorted(self.counts.items())
        )


def parse_file_map(text: str, problems: Problems) -> pd.DataFrame:
    """Scene, ids and the four image names as the file map gives them, one row per scene."""
    rows: list[tuple[str | int, ...]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split("\t")
        match = layout.SCENE_PATTERN.match(parts[1]) if len(parts) == 4 else None
        if match is None or not all(parts):
            problems.add("malformed_line", f"{layout.FILE_MAP} line {number}: {line[:80]!r}")
            continue
        rows.append((parts[1], parts[0], match["fg"], int(match["placement"]), *parts))
    columns = ["scene", "bg_id", "fg_id", "placement", *layout.IMAGE_KINDS]
    table = pd.DataFrame(rows, columns=columns)
    duplicated = table.duplicated("scene")
    for scene in table.loc[duplicated, "scene"]:
        problems.add("duplicate_scene", scene)
    return table.loc[~duplicated].reset_index(drop=True)


def parse_bboxes(text: str, problems: Problems) -> dict[str, tuple[int, int, int, int]]:
    boxes: dict[str, tuple[int, int, int, int]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.strip().split("\t")
        if not line.strip():
            continue
        try:
            x, y, width, height = (int(value) for value in parts[1:])
        except ValueError:
            problems.add("malformed_line", f"{layout.BBOX_FILE} line {number}: {line[:80]!r}")
            continue
        boxes[Path(parts[0]).stem] = (x, y, width, height)
    return boxes


def locate_images(
    table: pd.DataFrame, members: dict[str, Member], problems: Problems
) -> pd.DataFrame:
    """Add each image's member name, offset and size; drop scenes with a missing image."""
    missing = np.zeros(len(table), dtype=bool)
    for kind, member_path in layout.IMAGE_KINDS.items():
        names = [member_path(name) for name in table[kind]]
        found = [members.get(name) for name in names]
        absent = np.array([member is None for member in found], dtype=bool)
        problem = "missing_background" if kind == "bg" else "missing_image"
        for scene, name in zip(table.loc[absent, "scene"], np.array(names)[absent], strict=True):
            problems.add(problem, f"{scene}: {name}")
        compressed = [name for name, m in zip(names, found, strict=True) if m and m.method != 0]
        if compressed:
            raise IndexError_(
                f"{compressed[0]} and {len(compressed) - 1} more are compressed inside the "
                "archive; it was not written by fetch: run `dvc repro fetch`"
            )
        table[kind] = names
        table[f"{kind}_offset"] = [m.header_offset if m else -1 for m in found]
        table[f"{kind}_size"] = [m.size if m else -1 for m in found]
        table[f"{kind}_crc"] = [m.crc if m else -1 for m in found]
        missing |= absent
    return table.loc[~missing].reset_index(drop=True)


def _split_by_background(bg_ids: pd.Series, params: SplitParams) -> np.ndarray:
    """Whole backgrounds go to one split, filled in a seeded order up to each fraction."""
    sizes = bg_ids.value_counts().sort_index()
    order = np.random.default_rng(params.seed).permutation(len(sizes))
    shuffled = sizes.iloc[order]
    fractions = np.array([params.train, params.val, params.test])
    # A background goes to the split its midpoint falls in, so splits track the fractions.
    midpoints = (shuffled.cumsum() - shuffled / 2) / shuffled.sum()
    assigned = np.searchsorted(np.cumsum(fractions), midpoints.to_numpy(), side="right")
    assigned = np.minimum(assigned, len(SPLITS) - 1)
    # Small datasets: give every wanted split at least one background while others have two.
    for split in np.flatnonzero(fractions > 0):
        if not (assigned == split).any():
            donor = np.bincount(assigned, minlength=len(SPLITS)).argmax()
            if (assigned == donor).sum() > 1:
                assigned[np.flatnonzero(assigned == donor)[-1]] = split
    split_of_bg = dict(zip(shuffled.index, np.array(SPLITS)[assigned], strict=True))
    return bg_ids.map(split_of_bg).to_numpy()


def _split_at_random(count: int, params: SplitParams) -> np.ndarray:
    """Scenes shuffled with the seed and cut at the fractions, as the original 70/30 split."""
    bounds = np.round(np.cumsum([params.train, params.val]) * count).astype(int)
    labels = np.empty(count, dtype=object)
    order = np.random.default_rng(params.seed).permutation(count)
    labels[order[: bounds[0]]] = "train"
    labels[order[bounds[0] : bounds[1]]] = "val"
    labels[order[bounds[1] :]] = "test"
    return labels


def assign_splits(table: pd.DataFrame, params: SplitParams) -> np.ndarray:
    if params.method == "random":
        return _split_at_random(len(table), params)
    return _split_by_background(table["bg_id"], params)


def drop_bad_images(
    table: pd.DataFrame, archive_path: Path, problems: Problems, workers: int
) -> pd.DataFrame:
    """Decode every image once (``index.verify: decode``); drop the scenes with a bad one."""
    bad = {check.member: check for check in verify_images(archive_path, table, workers)}
    affected = np.zeros(len(table), dtype=bool)
    for kind in layout.IMAGE_KINDS:
        hit = table[kind].isin(bad).to_numpy()
        for scene, member in zip(table.loc[hit, "scene"], table.loc[hit, kind], strict=True):
            problems.add(bad[member].problem or "", f"{scene}: {bad[member].detail}")
        affected |= hit
    return table.loc[~affected].reset_index(drop=True)


def build_index(
    archive_path: Path, params: IndexParams, workers: int = 1
) -> tuple[pd.DataFrame, Problems]:
    """The scene table of the stored zip at ``archive_path``, and the problems met; ``workers``
    processes decode the images when ``params.verify`` asks for it."""
    if not archive_path.is_file():
        raise IndexError_(f"{archive_path} not found: run `dvc repro fetch` first")
    members = read_members(archive_path)
    problems = Problems()
    table = parse_file_map(_read_text(archive_path, members, layout.FILE_MAP), problems)
    boxes = (
        parse_bboxes(_read_text(archive_path, members, layout.BBOX_FILE), problems)
        if layout.BBOX_FILE in members
        else {}
    )
    table = locate_images(table, members, problems)
    if params.verify == "decode":
        table = drop_bad_images(table, archive_path, problems, workers)
    if problems and params.on_problem == "stop":
        raise IndexError_(
            f"{archive_path}: {sum(problems.counts.values())} problems in the dataset:\n"
            f"{problems.describe()}\n"
            "Fix the data, or set index.on_problem: skip to index the scenes that are complete."
        )
    if table.empty:
        raise IndexError_(f"{archive_path}: no complete scene in {layout.FILE_MAP}")
    box = np.array([boxes.get(scene, (-1, -1, -1, -1)) for scene in table["scene"]]).reshape(-1, 4)
    for column, values in zip(("bbox_x", "bbox_y", "bbox_w", "bbox_h"), box.T, strict=True):
        table[column] = values.astype("int32")
    table["split"] = assign_splits(table, params.split)
    return table[_COLUMNS], problems


_COLUMNS = [
    "scene", "bg_id", "fg_id", "placement",
    *[
        f"{kind}{suffix}"
        for kind in layout.IMAGE_KINDS
        for suffix in ("", "_offset", "_size", "_crc")
    ],
    "bbox_x", "bbox_y", "bbox_w", "bbox_h", "split",
]  # fmt: skip


def _read_text(archive_path: Path, members: dict[str, Member], name: str) -> str:
    member = members.get(name)
    if member is None:
        raise IndexError_(f"{archive_path}: no {name} in the archive: run `dvc repro fetch`")
    if member.method != 0:
        raise IndexError_(
            f"{archive_path}: {name} is compressed inside the archive; it was not written by "
            "fetch: run `dvc repro fetch`"
        )
    return MemberReader(archive_path).read(member.header_offset, member.size).decode("utf-8")


def write_index(table: pd.DataFrame, path: Path, archive_path: Path) -> None:
    """Write the table as parquet (atomically), noting which archive it describes."""
    meta = {"archive": str(archive_path), "archive_bytes": archive_path.stat().st_size}
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata(
        {**(arrow.schema.metadata or {}), _METADATA_KEY: json.dumps(meta).encode()}
    )
    with replaced_atomically(path) as partial:
        pq.write_table(arrow, partial)


def read_index(path: Path) -> tuple[pd.DataFrame, Path]:
    """The scene table and the archive it describes, checked to be the same archive."""
    if not path.is_file():
        raise IndexError_(f"{path} not found: run `dvc repro index` first")
    arrow = pq.read_table(path)
    meta = json.loads((arrow.schema.metadata or {}).get(_METADATA_KEY, b"{}"))
    if "archive" not in meta:
        raise IndexError_(f"{path} was not written by the index stage: run `dvc repro index`")
    archive_path = Path(meta["archive"])
    if not archive_path.is_file() or archive_path.stat().st_size != meta["archive_bytes"]:
        raise IndexError_(
            f"{path} describes {archive_path} as it was, which has changed or gone since: "
            "run `dvc repro index`"
        )
    return arrow.to_pandas(), archive_path


def fingerprint(path: Path) -> str:
    """Short hash of the index file: which data a run was trained on."""
    return hashlib.md5(path.read_bytes()).hexdigest()[:12]


def rows_fingerprint(rows: pd.DataFrame) -> str:
    """Short hash of which scenes, with which image contents (their CRC-32s): the test data."""
    columns = ["scene", *(f"{kind}_crc" for kind in layout.IMAGE_KINDS)]
    text = rows[columns].sort_values("scene").to_csv(index=False)
    return hashlib.md5(text.encode()).hexdigest()[:12]


def summarize(table: pd.DataFrame, problems: Problems) -> dict[str, object]:
    """Scenes and backgrounds per split, and problems skipped: the index stage's metrics."""
    by_split = table.groupby("split")
    return {
        "scenes": len(table),
        "backgrounds": int(table["bg_id"].nunique()),
        "foregrounds": int(table["fg_id"].nunique()),
        **{f"{split}_scenes": int(by_split.size().get(split, 0)) for split in SPLITS},
        **{
            f"{split}_backgrounds": int(by_split["bg_id"].nunique().get(split, 0))
            for split in SPLITS
        },
        "problems_skipped": int(sum(problems.counts.values())),
    }
