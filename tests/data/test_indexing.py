from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import LIMITS

from depthseg.core.params import IndexParams, SplitParams
from depthseg.data import indexing, layout
from depthseg.data.archive import MemberReader
from depthseg.data.indexing import (
    SPLITS,
    IndexError_,
    assign_splits,
    build_index,
    read_index,
    summarize,
    write_index,
)

Files = dict[str, bytes]
MakeRelease = Callable[..., Files]
MakeZip = Callable[..., Path]


def _params(on_problem: str = "stop", **split: object) -> IndexParams:
    return IndexParams.model_validate({"on_problem": on_problem, "split": split})


def _split_counts(labels: np.ndarray) -> dict[str, int]:
    return {split: int((labels == split).sum()) for split in SPLITS}


def _groups(sizes: list[int]) -> pd.DataFrame:
    bg_ids = [layout.bg_name(group) for group, size in enumerate(sizes, 1) for _ in range(size)]
    return pd.DataFrame({"bg_id": bg_ids})


def _file_map_line(scene: str, bg: str | None = None) -> str:
    return f"{bg or scene.split('_')[0]}\t{scene}\t{scene}_mask\t{scene}_depth_map\n"


# ---------------------------------------------------------------------------------------------
# The real scenes


def test_modest_mini_index(modest_archive: Path, modest_mini: Path) -> None:
    table, problems = build_index(modest_archive, IndexParams(), LIMITS)
    assert not problems
    assert len(table) == 12
    assert list(table.columns) == indexing._COLUMNS
    assert set(table["scene"]) == {
        line.split("\t")[1] for line in (modest_mini / layout.FILE_MAP).read_text().splitlines()
    }
    splits_per_background = table.groupby("bg_id")["split"].nunique()
    assert (splits_per_background == 1).all()
    assert set(table["split"]) == set(SPLITS)
    assert summarize(table, problems)["problems_skipped"] == 0


def test_modest_mini_offsets_read_back_the_files(modest_archive: Path, modest_mini: Path) -> None:
    table, _ = build_index(modest_archive, IndexParams(), LIMITS)
    reader = MemberReader(modest_archive)
    for row in table.itertuples():
        for kind in layout.IMAGE_KINDS:
            member = getattr(row, kind)
            data = reader.read(getattr(row, f"{kind}_offset"), getattr(row, f"{kind}_size"))
            assert data == (modest_mini / member).read_bytes(), member


def test_modest_mini_ids_and_boxes(modest_archive: Path, modest_mini: Path) -> None:
    table, _ = build_index(modest_archive, IndexParams(), LIMITS)
    boxes = {
        Path(name).stem: tuple(int(value) for value in values)
        for name, *values in (
            line.split("\t") for line in (modest_mini / layout.BBOX_FILE).read_text().splitlines()
        )
    }
    for row in table.itertuples():
        assert row.scene == f"{row.bg_id}_{row.fg_id}_{row.placement:02d}"
        assert (row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h) == boxes[row.scene]


# ---------------------------------------------------------------------------------------------
# Splits


def test_random_split_cuts_at_the_fractions(
    make_release: MakeRelease, make_zip: MakeZip, tmp_path: Path
) -> None:
    archive = make_zip(make_release(4, 1, 5), tmp_path / "modest.zip")
    params = _params(method="random", train=0.5, val=0.25, test=0.25, seed=3)
    table, _ = build_index(archive, params, LIMITS)
    assert _split_counts(table["split"].to_numpy()) == {"train": 10, "val": 5, "test": 5}
    # Scenes of one background may land in different splits.
    assert (table.groupby("bg_id")["split"].nunique() > 1).any()


@pytest.mark.parametrize("count", [7, 10, 33])
def test_random_split_counts(count: int) -> None:
    params = SplitParams(method="random", train=0.6, val=0.3, test=0.1)
    counts = _split_counts(assign_splits(_groups([1] * count), params))
    assert sum(counts.values()) == count
    assert counts["train"] == round(0.6 * count)
    assert counts["train"] + counts["val"] == round(0.9 * count)


@pytest.mark.parametrize("method", ["random", "by_background"])
def test_split_depends_only_on_the_seed(method: str) -> None:
    table = _groups([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9])

    def labels(seed: int) -> list[str]:
        params = SplitParams(method=method, train=0.6, val=0.2, test=0.2, seed=seed)
        return list(assign_splits(table, params))

    assert labels(0) == labels(0)
    assert labels(0) != labels(1)


@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.7, 0.3, 0.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_grouped_split_tracks_the_fractions(
    fractions: tuple[float, float, float], seed: int
) -> None:
    sizes = np.random.default_rng(100 + seed).integers(1, 30, size=100).tolist()
    table = _groups(sizes)
    train, val, test = fractions
    labels = assign_splits(table, SplitParams(train=train, val=val, test=test, seed=seed))
    assert (table.assign(split=labels).groupby("bg_id")["split"].nunique() == 1).all()
    counts = _split_counts(labels)
    for split, fraction in zip(SPLITS, fractions, strict=True):
        assert counts[split] / len(table) == pytest.approx(fraction, abs=0.03), split


def test_grouped_split_gives_every_wanted_split_a_background() -> None:
    labels = assign_splits(_groups([5, 5, 5]), SplitParams(train=0.8, val=0.1, test=0.1))
    assert set(labels) == set(SPLITS)


# ---------------------------------------------------------------------------------------------
# Problems in the file map


def _drop_scene_image(files: Files) -> tuple[str, str]:
    del files[layout.depth_member("bg002_fg001_01_depth_map")]
    return "missing_image", "bg002_fg001_01"


def _wrong_column_count(files: Files) -> tuple[str, str]:
    files[layout.FILE_MAP] += b"bg001\tbg001_fg001_07\tbg001_fg001_07_mask\n"
    return "malformed_line", "bg001_fg001_07"


def _bad_scene_name(files: Files) -> tuple[str, str]:
    files[layout.FILE_MAP] += _file_map_line("bg001_person_01").encode()
    return "malformed_line", "bg001_person_01"


def _duplicate_scene(files: Files) -> tuple[str, str]:
    files[layout.FILE_MAP] += _file_map_line("bg003_fg001_01").encode()
    return "duplicate_scene", "bg003_fg001_01"


def _missing_background(files: Files) -> tuple[str, str]:
    del files[layout.bg_member("bg004")]
    return "missing_background", "bg/bg004.jpeg"


PROBLEMS = [
    _drop_scene_image,
    _wrong_column_count,
    _bad_scene_name,
    _duplicate_scene,
    _missing_background,
]


@pytest.mark.parametrize("make_problem", PROBLEMS, ids=lambda problem: problem.__name__[1:])
def test_problem_stops_the_index_with_its_kind_and_an_example(
    make_release: MakeRelease,
    make_zip: MakeZip,
    tmp_path: Path,
    make_problem: Callable[[Files], tuple[str, str]],
) -> None:
    files = make_release(4)
    kind, example = make_problem(files)
    archive = make_zip(files, tmp_path / "modest.zip")
    with pytest.raises(IndexError_) as caught:
        build_index(archive, _params("stop"), LIMITS)
    message = str(caught.value)
    (line,) = [line for line in message.splitlines() if line.strip().startswith(kind)]
    assert f"{kind}: 1 " in line
    assert example in line
    assert "on_problem: skip" in message


def test_all_problems_listed_and_skipped(
    make_release: MakeRelease, make_zip: MakeZip, tmp_path: Path
) -> None:
    files = make_release(4)
    kinds = {make_problem(files)[0] for make_problem in PROBLEMS}
    archive = make_zip(files, tmp_path / "modest.zip")
    with pytest.raises(IndexError_) as caught:
        build_index(archive, _params("stop"), LIMITS)
    assert all(kind in str(caught.value) for kind in kinds)

    table, problems = build_index(archive, _params("skip"), LIMITS)
    # bg002's scene lost its depth map and bg004 its background: two complete scenes remain.
    assert sorted(table["scene"]) == ["bg001_fg001_01", "bg003_fg001_01"]
    assert dict(problems.counts) == {
        "missing_image": 1,
        "malformed_line": 2,
        "duplicate_scene": 1,
        "missing_background": 1,
    }
    assert summarize(table, problems)["problems_skipped"] == len(PROBLEMS)


def test_malformed_bbox_line_is_a_problem(
    make_release: MakeRelease, make_zip: MakeZip, tmp_path: Path
) -> None:
    files = make_release(3)
    files[layout.BBOX_FILE] += b"bg001_fg001_01.jpeg\t1\t2\n"
    archive = make_zip(files, tmp_path / "modest.zip")
    with pytest.raises(IndexError_, match=r"malformed_line: 1 .*bbox\.txt line 4"):
        build_index(archive, _params("stop"), LIMITS)


def test_scene_without_bbox_gets_minus_one(
    make_release: MakeRelease, make_zip: MakeZip, tmp_path: Path
) -> None:
    files = make_release(3)
    del files[layout.BBOX_FILE]
    table, problems = build_index(make_zip(files, tmp_path / "modest.zip"), IndexParams(), LIMITS)
    assert not problems
    assert (table[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]] == -1).all().all()


def test_no_complete_scene_is_an_error(
    make_release: MakeRelease, make_zip: MakeZip, tmp_path: Path
) -> None:
    files = make_release(2)
    files[layout.FILE_MAP] = b"only\tnonsense\n"
    with pytest.raises(IndexError_, match="no complete scene"):
        build_index(make_zip(files, tmp_path / "modest.zip"), _params("skip"), LIMITS)


@pytest.mark.parametrize("stored", [(), (layout.FILE_MAP, layout.BBOX_FILE)], ids=["all", "images"])
def test_compressed_members_are_refused(
    make_release: MakeRelease, make_zip: MakeZip, tmp_path: Path, stored: tuple[str, ...]
) -> None:
    files = make_release(3)
    archive = tmp_path / "modest.zip"
    deflated = {name: data for name, data in files.items() if name not in stored}
    make_zip(deflated, archive, compression=zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_STORED) as appended:
        for name in stored:
            appended.writestr(name, files[name])
    with pytest.raises(IndexError_, match=r"compressed.*dvc repro fetch"):
        build_index(archive, IndexParams(), LIMITS)


def test_missing_archive_asks_for_fetch(tmp_path: Path) -> None:
    with pytest.raises(IndexError_, match="dvc repro fetch"):
        build_index(tmp_path / "modest.zip", IndexParams(), LIMITS)


# ---------------------------------------------------------------------------------------------
# The index file


def test_index_file_round_trip(modest_archive: Path, tmp_path: Path) -> None:
    table, _ = build_index(modest_archive, IndexParams(), LIMITS)
    path = tmp_path / "index" / "scenes.parquet"
    write_index(table, path, modest_archive)
    assert not path.with_name(path.name + ".partial").exists()
    read_back, archive_path = read_index(path)
    assert archive_path == modest_archive
    pd.testing.assert_frame_equal(read_back, table, check_dtype=False)
    assert read_back["bg_offset"].dtype.kind == "i"


def _append_bytes(archive: Path) -> None:
    with archive.open("ab") as handle:
        handle.write(b"\0")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_append_bytes, id="archive-changed"),
        pytest.param(Path.unlink, id="archive-gone"),
        pytest.param(None, id="index-missing"),
    ],
)
def test_read_index_refuses_a_stale_or_missing_index(
    make_release: MakeRelease,
    make_zip: MakeZip,
    tmp_path: Path,
    change: Callable[[Path], None] | None,
) -> None:
    archive = make_zip(make_release(3), tmp_path / "modest.zip")
    path = tmp_path / "scenes.parquet"
    if change is None:
        path = tmp_path / "no-such-index.parquet"
    else:
        write_index(build_index(archive, IndexParams(), LIMITS)[0], path, archive)
        change(archive)
    with pytest.raises(IndexError_, match="run `dvc repro index`"):
        read_index(path)


def test_read_index_refuses_a_parquet_it_did_not_write(tmp_path: Path) -> None:
    path = tmp_path / "scenes.parquet"
    pd.DataFrame({"scene": ["bg001_fg001_01"]}).to_parquet(path)
    with pytest.raises(IndexError_, match="not written by the index stage"):
        read_index(path)


def test_summary_counts_scenes_and_backgrounds_per_split(
    make_release: MakeRelease, make_zip: MakeZip, tmp_path: Path
) -> None:
    archive = make_zip(make_release(10, 2, 2), tmp_path / "modest.zip")
    table, problems = build_index(archive, IndexParams(), LIMITS)
    summary = summarize(table, problems)
    assert summary["scenes"] == 40
    assert summary["backgrounds"] == 10
    assert summary["foregrounds"] == 2
    assert sum(summary[f"{split}_scenes"] for split in SPLITS) == 40
    assert sum(summary[f"{split}_backgrounds"] for split in SPLITS) == 10
    assert summary["train_scenes"] == 4 * summary["train_backgrounds"]
