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
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from depthseg.core.errors import DepthsegError
from depthseg.core.files import replaced_atomically
from depthseg.core.params import IndexParams, LimitsParams, SplitParams
from depthseg.data import layout
from depthseg.data.archive import Member, MemberReader, read_members
from depthseg.data.verify import check_images

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
        self.add_many(kind, 1, [example])

    def add_many(self, kind: str, count: int, examples: list[str]) -> None:
        """``count`` problems of ``kind``, of which ``examples`` are the first."""
        if count == 0:
            return
        self.counts[kind] += count
        shown = self.examples.setdefault(kind, [])
        shown += examples[: EXAMPLES_SHOWN - len(shown)]

    def __bool__(self) -> bool:
        return bool(self.counts)

    def describe(self) -> str:
        return "\n".join(
            f"  {kind}: {count} (e.g. {'; '.join(self.examples[kind])})"
            for kind, count in sorted(self.counts.items())
        )


def _text_rows(
    archive_path: Path,
    member: Member,
    name: str,
    columns: list[str],
    limits: LimitsParams,
    problems: Problems,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The tab-separated lines of the stored member ``name`` as a table of ``columns`` (strings,
    surrounding spaces trimmed, blank lines left out), and each row's line number; a line with
    another number of fields is a problem. Arrow's CSV reader streams it from a memory map: the
    table takes about the file's size, where a list of Python strings took 20 times that."""
    if refusal := limits.exceeded("text_bytes", member.size, f"{archive_path}:{name}"):
        raise IndexError_(f"{refusal}; it is not the release's {name}")
    skipped: list[int] = []

    def invalid(row: pacsv.InvalidRow) -> str:
        skipped.append(row.number)
        if row.text.strip():
            problems.add("malformed_line", f"{name} line {row.number}: {row.text[:80]!r}")
        return "skip"

    start = MemberReader(archive_path).data_offset(member.header_offset)
    with pa.memory_map(str(archive_path)) as mapped:
        try:
            table = pacsv.read_csv(
                pa.BufferReader(mapped.read_at(member.size, start)),
                read_options=pacsv.ReadOptions(column_names=columns, use_threads=False),
                parse_options=pacsv.ParseOptions(
                    delimiter="\t",
                    quote_char=False,
                    ignore_empty_lines=False,
                    invalid_row_handler=invalid,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(columns, pa.string()), strings_can_be_null=False
                ),
            )
        except pa.ArrowInvalid as error:
            raise IndexError_(
                f"{archive_path}: {name} cannot be read as tab-separated UTF-8 text ({error})"
            ) from None
    frame = pd.DataFrame(
        {c: pc.utf8_trim_whitespace(table[c]).to_pandas() for c in columns}, dtype="str"
    )
    lines = np.setdiff1d(np.arange(1, len(frame) + len(skipped) + 1), skipped)
    blank = (frame == "").all(axis=1).to_numpy()
    return frame[~blank].reset_index(drop=True), lines[~blank]


def _malformed(
    frame: pd.DataFrame, lines: np.ndarray, bad: np.ndarray, name: str, problems: Problems
) -> None:
    shown = frame[bad].head(EXAMPLES_SHOWN).itertuples(index=False)
    examples = [
        f"{name} line {line}: {chr(9).join(row)[:80]!r}"
        for line, row in zip(lines[bad], shown, strict=False)
    ]
    problems.add_many("malformed_line", int(bad.sum()), examples)


def parse_file_map(
    archive_path: Path, member: Member, limits: LimitsParams, problems: Problems
) -> pd.DataFrame:
    """Scene, ids and the four image names as the file map gives them, one row per scene."""
    kinds = list(layout.IMAGE_KINDS)
    frame, lines = _text_rows(archive_path, member, layout.FILE_MAP, kinds, limits, problems)
    parts = frame["bg_fg"].str.extract(layout.SCENE_PATTERN)
    malformed = (parts["bg"].isna() | (frame[kinds] == "").any(axis=1)).to_numpy()
    _malformed(frame, lines, malformed, layout.FILE_MAP, problems)
    frame, parts = frame[~malformed], parts[~malformed]
    table = pd.DataFrame(
        {
            "scene": frame["bg_fg"],
            "bg_id": frame["bg"],
            "fg_id": parts["fg"],
            "placement": parts["placement"].astype(int),
            **{kind: frame[kind] for kind in kinds},
        }
    ).reset_index(drop=True)
    duplicated = table.duplicated("scene")
    scenes = table.loc[duplicated, "scene"]
    problems.add_many("duplicate_scene", len(scenes), scenes.head(EXAMPLES_SHOWN).tolist())
    return table.loc[~duplicated].reset_index(drop=True)


def parse_bboxes(
    archive_path: Path, member: Member, limits: LimitsParams, problems: Problems
) -> pd.DataFrame:
    """Each scene's box (integer columns x, y, w, h), indexed by scene name."""
    columns = ["file", "x", "y", "w", "h"]
    frame, lines = _text_rows(archive_path, member, layout.BBOX_FILE, columns, limits, problems)
    numbers = frame[columns[1:]].apply(pd.to_numeric, errors="coerce")
    malformed = (numbers.isna() | (numbers % 1 != 0)).any(axis=1).to_numpy()
    _malformed(frame, lines, malformed, layout.BBOX_FILE, problems)
    boxes = numbers[~malformed].astype(np.int64)
    boxes.index = frame["file"][~malformed].map(lambda file: PurePosixPath(file).stem)
    return boxes[~boxes.index.duplicated(keep="last")]


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
    table: pd.DataFrame,
    archive_path: Path,
    params: IndexParams,
    limits: LimitsParams,
    problems: Problems,
    workers: int,
) -> pd.DataFrame:
    """Check every image once (its header; its pixels with ``index.verify: decode``); drop the
    scenes with a bad one."""
    decode = params.verify == "decode"
    found = check_images(archive_path, table, limits, decode, workers)
    bad = {check.member: check for check in found}
    affected = np.zeros(len(table), dtype=bool)
    for kind in layout.IMAGE_KINDS:
        hit = table[kind].isin(bad).to_numpy()
        for scene, member in zip(table.loc[hit, "scene"], table.loc[hit, kind], strict=True):
            problems.add(bad[member].problem or "", f"{scene}: {bad[member].detail}")
        affected |= hit
    return table.loc[~affected].reset_index(drop=True)


def _text_member(archive_path: Path, members: dict[str, Member], name: str) -> Member:
    member = members.get(name)
    if member is None:
        raise IndexError_(f"{archive_path}: no {name} in the archive: run `dvc repro fetch`")
    if member.method != 0:
        raise IndexError_(
            f"{archive_path}: {name} is compressed inside the archive; it was not written by "
            "fetch: run `dvc repro fetch`"
        )
    return member


def build_index(
    archive_path: Path, params: IndexParams, limits: LimitsParams, workers: int = 1
) -> tuple[pd.DataFrame, Problems]:
    """The scene table of the stored zip at ``archive_path``, and the problems met; ``workers``
    processes check the images (see ``verify``)."""
    if not archive_path.is_file():
        raise IndexError_(f"{archive_path} not found: run `dvc repro fetch` first")
    members = read_members(archive_path)
    problems = Problems()
    file_map = _text_member(archive_path, members, layout.FILE_MAP)
    table = parse_file_map(archive_path, file_map, limits, problems)
    boxes = (
        parse_bboxes(
            archive_path, _text_member(archive_path, members, layout.BBOX_FILE), limits, problems
        )
        if layout.BBOX_FILE in members
        else pd.DataFrame(columns=["x", "y", "w", "h"], dtype=np.int64)
    )
    table = locate_images(table, members, problems)
    table = drop_bad_images(table, archive_path, params, limits, problems, workers)
    if problems and params.on_problem == "stop":
        raise IndexError_(
            f"{archive_path}: {sum(problems.counts.values())} problems in the dataset:\n"
            f"{problems.describe()}\n"
            "Fix the data, or set index.on_problem: skip to index the scenes that are complete."
        )
    if table.empty:
        raise IndexError_(f"{archive_path}: no complete scene in {layout.FILE_MAP}")
    box = boxes.reindex(table["scene"], fill_value=-1)
    for column, key in zip(("bbox_x", "bbox_y", "bbox_w", "bbox_h"), "xywh", strict=True):
        table[column] = box[key].to_numpy().astype("int32")
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


def index_file_hash(path: Path) -> str:
    """Short hash of the index file's bytes: which data, split how, a run was trained on."""
    return hashlib.md5(path.read_bytes()).hexdigest()[:12]


def scene_contents_hash(rows: pd.DataFrame) -> str:
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
