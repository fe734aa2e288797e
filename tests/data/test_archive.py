from __future__ import annotations

import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import LIMITS

from depthseg.data import layout
from depthseg.data.archive import (
    ArchiveError,
    Member,
    MemberReader,
    pack_folder,
    read_members,
    repack_zip,
)

Files = dict[str, bytes]
MakeZip = Callable[..., Path]

_EOCD_SIGNATURE = b"PK\x05\x06"


def _zipfile_listing(path: Path) -> dict[str, tuple[int, int, int]]:
    """name -> (header offset, size, method), as the standard library reads it."""
    with zipfile.ZipFile(path) as archive:
        return {
            info.filename: (info.header_offset, info.compress_size, info.compress_type, info.CRC)
            for info in archive.infolist()
        }


def _stored_contents(path: Path) -> Files:
    """Every member's bytes, read through MemberReader at the offsets read_members gives."""
    reader = MemberReader(path)
    return {name: reader.read(m.header_offset, m.size) for name, m in read_members(path).items()}


def _assert_members_match_zipfile(path: Path) -> None:
    members = read_members(path)
    assert {name: tuple(member) for name, member in members.items()} == _zipfile_listing(path)
    with zipfile.ZipFile(path) as archive:
        assert _stored_contents(path) == {name: archive.read(name) for name in archive.namelist()}


def test_pack_folder_writes_a_stored_zip_read_in_place(
    modest_mini: Path, modest_mini_files: Files, tmp_path: Path
) -> None:
    dest = tmp_path / "modest.zip"
    count = pack_folder(modest_mini, dest, LIMITS)
    assert count == len(modest_mini_files)
    members = read_members(dest)
    assert set(members) == set(modest_mini_files)
    assert "README.md" not in members
    assert {member.method for member in members.values()} == {zipfile.ZIP_STORED}
    _assert_members_match_zipfile(dest)
    assert _stored_contents(dest) == modest_mini_files


def test_pack_folder_is_byte_identical_for_the_same_content(
    modest_mini: Path, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    pack_folder(modest_mini, first, LIMITS)
    pack_folder(modest_mini, second, LIMITS)
    assert first.read_bytes() == second.read_bytes()


def test_pack_folder_without_file_map_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bg").mkdir()
    with pytest.raises(ArchiveError, match=layout.FILE_MAP):
        pack_folder(tmp_path, tmp_path / "out.zip", LIMITS)


@pytest.mark.parametrize("top", ["", "modest_museum_dataset/"], ids=["root", "top-folder"])
def test_repack_deflated_zip_keeps_exactly_the_layout(
    modest_mini_files: Files, make_zip: MakeZip, tmp_path: Path, top: str
) -> None:
    extras = {"README.md": b"readme", "notes/todo.txt": b"x", f"{layout.BG_DIR}/": b""}
    files = {**modest_mini_files, **extras}
    source = make_zip(files, tmp_path / "in.zip", top=top, compression=zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(source, "a") as archive:  # what macOS adds beside the top folder
        archive.writestr(f"__MACOSX/{top}bg/._bg001.jpeg", b"resource fork")
    dest = tmp_path / "out.zip"
    assert repack_zip(source, dest, LIMITS) == len(modest_mini_files)
    assert _stored_contents(dest) == modest_mini_files
    assert {m.method for m in read_members(dest).values()} == {zipfile.ZIP_STORED}
    _assert_members_match_zipfile(dest)


@pytest.mark.parametrize("entry", ["../evil.txt", "/abs.txt", "top/../../x", "C:/windows.txt"])
def test_repack_refuses_entries_outside_the_dataset(
    make_release: Callable[..., Files], make_zip: MakeZip, tmp_path: Path, entry: str
) -> None:
    source = make_zip({**make_release(1), entry: b"payload"}, tmp_path / "in.zip")
    dest = tmp_path / "out.zip"
    with pytest.raises(ArchiveError) as caught:
        repack_zip(source, dest, LIMITS)
    assert repr(entry) in str(caught.value)
    assert not dest.exists()


@pytest.mark.parametrize(
    ("file_maps", "found"),
    [
        pytest.param(["a/file_map.txt", "b/file_map.txt"], "found it at", id="two-tops"),
        pytest.param(["file_map.txt", "a/file_map.txt"], "found it at", id="root-and-top"),
        pytest.param([], "found none", id="none"),
        pytest.param(["a/b/file_map.txt"], "found none", id="too-deep"),
    ],
)
def test_repack_needs_exactly_one_layout_root(
    make_zip: MakeZip, tmp_path: Path, file_maps: list[str], found: str
) -> None:
    files = dict.fromkeys(file_maps, b"bg001\tbg001_fg001_01\tm\td\n")
    source = make_zip({**files, "bg/bg001.jpeg": b"jpeg"}, tmp_path / "in.zip")
    with pytest.raises(ArchiveError, match=found) as caught:
        repack_zip(source, tmp_path / "out.zip", LIMITS)
    assert layout.FILE_MAP in str(caught.value)


def test_repack_of_a_file_that_is_no_zip(tmp_path: Path) -> None:
    source = tmp_path / "download.zip"
    source.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(ArchiveError, match=r"download\.zip: not a zip archive"):
        repack_zip(source, tmp_path / "out.zip", LIMITS)


def _fail_after(count: int) -> Callable[[int], None]:
    done = 0

    def progress(step: int) -> None:
        nonlocal done
        done += step
        if done >= count:
            raise KeyboardInterrupt("stopped midway")

    return progress


def _corrupt_member_data(path: Path, name: str) -> None:
    """Flip a byte of a stored member's data, so its CRC no longer matches."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("existing", [None, b"the previous archive"], ids=["new", "existing"])
@pytest.mark.parametrize("how", ["interrupted-pack", "corrupt-member"])
def test_failed_write_leaves_no_partial_and_keeps_the_old_archive(
    make_release: Callable[..., Files],
    make_folder: Callable[[Files, Path], Path],
    make_zip: MakeZip,
    tmp_path: Path,
    existing: bytes | None,
    how: str,
) -> None:
    files = make_release(4)
    dest = tmp_path / "raw" / "modest.zip"
    if existing is not None:
        dest.parent.mkdir()
        dest.write_bytes(existing)
    if how == "interrupted-pack":
        folder = make_folder(files, tmp_path / "release")
        with pytest.raises(KeyboardInterrupt):
            pack_folder(folder, dest, LIMITS, progress=_fail_after(3))
    else:
        source = make_zip(files, tmp_path / "in.zip")
        _corrupt_member_data(source, layout.scene_member("bg003_fg001_01"))
        with pytest.raises(ArchiveError, match="not a readable zip"):
            repack_zip(source, dest, LIMITS)
    if existing is None:
        assert not dest.parent.exists() or not any(dest.parent.iterdir())
    else:
        assert dest.read_bytes() == existing
        assert list(dest.parent.iterdir()) == [dest]  # no temporary file left


def _mark_end_record_as_zip64(path: Path) -> None:
    """Put the 'see zip64 record' values in the classic end record, as an archive with more
    than 65535 entries or over 4 GiB has them (Python writes real values when they fit)."""
    data = bytearray(path.read_bytes())
    at = data.rfind(_EOCD_SIGNATURE)
    struct.pack_into("<2H2L", data, at + 8, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    path.write_bytes(bytes(data))


_SMALL_ZIP64_LIMIT = 500


def _write_zip64(
    files: Files, path: Path, monkeypatch: pytest.MonkeyPatch, make_zip: MakeZip
) -> None:
    """Small limits while writing make Python write zip64 sizes, offsets and end records."""
    with monkeypatch.context() as patched:
        patched.setattr(zipfile, "ZIP64_LIMIT", _SMALL_ZIP64_LIMIT)
        patched.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 4)
        make_zip(files, path)


@pytest.mark.parametrize("end_record", ["python", "sentinels"])
def test_read_members_of_a_zip64_archive(
    make_release: Callable[..., Files],
    make_zip: MakeZip,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    end_record: str,
) -> None:
    files = make_release(3)
    path = tmp_path / "zip64.zip"
    _write_zip64(files, path, monkeypatch, make_zip)
    if end_record == "sentinels":
        _mark_end_record_as_zip64(path)
    raw = path.read_bytes()
    assert b"PK\x06\x06" in raw  # the zip64 end record is there
    members = read_members(path)
    # Some members really are zip64 entries: big sizes and late offsets overflow the limits.
    assert any(m.size > _SMALL_ZIP64_LIMIT for m in members.values())
    assert any(m.size <= _SMALL_ZIP64_LIMIT for m in members.values())
    assert any(m.header_offset > _SMALL_ZIP64_LIMIT for m in members.values())
    _assert_members_match_zipfile(path)
    assert _stored_contents(path) == files


def test_read_members_with_exactly_65535_entries(tmp_path: Path) -> None:
    """65535 entries still fit the classic end record, so Python writes no zip64 record."""
    path = tmp_path / "full.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for number in range(0xFFFF):
            archive.writestr(f"bg/{number}", b"")
    assert b"PK\x06\x06" not in path.read_bytes()
    members = read_members(path)
    assert len(members) == 0xFFFF
    assert {name: tuple(member) for name, member in members.items()} == _zipfile_listing(path)


def test_read_members_of_a_file_that_is_no_zip(tmp_path: Path) -> None:
    path = tmp_path / "modest.zip"
    path.write_bytes(b"\0" * 100)
    with pytest.raises(ArchiveError, match="not a zip"):
        read_members(path)


def test_reading_at_a_stale_offset_asks_to_reindex(
    make_release: Callable[..., Files], make_zip: MakeZip, tmp_path: Path
) -> None:
    path = make_zip(make_release(1), tmp_path / "modest.zip")
    member = read_members(path)[layout.FILE_MAP]
    with pytest.raises(ArchiveError, match="dvc repro index"):
        MemberReader(path).read(member.header_offset + 1, member.size)


def test_member_reader_reads_after_pickling(
    make_release: Callable[..., Files], make_zip: MakeZip, tmp_path: Path
) -> None:
    files = make_release(2)
    path = make_zip(files, tmp_path / "modest.zip")
    members: dict[str, Member] = read_members(path)
    reader = MemberReader(path)
    name = layout.scene_member("bg002_fg001_01")
    before = reader.read(members[name].header_offset, members[name].size)
    copy = pickle.loads(pickle.dumps(reader))
    assert copy.path == path
    assert all(
        copy.read(m.header_offset, m.size) == files[member_name]
        for member_name, m in members.items()
    )
    assert before == files[name]


def test_a_symlink_inside_the_folder_is_followed_one_outside_is_refused(
    make_release, make_folder, tmp_path: Path
) -> None:
    folder = make_folder(make_release(2), tmp_path / "release")
    scene = folder / layout.scene_member("bg002_fg001_01")
    copy = folder / "bg_fg" / "original.bin"
    scene.rename(copy)
    scene.symlink_to(copy)  # inside the folder: packed as the file it points to
    dest = tmp_path / "modest.zip"
    pack_folder(folder, dest, LIMITS)
    with zipfile.ZipFile(dest) as packed:
        assert packed.read(layout.scene_member("bg002_fg001_01")) == copy.read_bytes()
    secret = tmp_path / "secret.jpeg"
    secret.write_bytes(b"private")
    scene.unlink()
    scene.symlink_to(secret)
    with pytest.raises(ArchiveError, match=r"leads to .*secret\.jpeg, outside the dataset folder"):
        pack_folder(folder, tmp_path / "other.zip", LIMITS)
    assert not (tmp_path / "other.zip").exists()


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_an_oversized_member_is_refused_before_anything_is_written(
    make_release, make_folder, make_zip, tmp_path: Path, form: str
) -> None:
    files = make_release(2)
    files[layout.depth_member("bg001_fg001_01_depth_map")] = b"\0" * 5000
    dest = tmp_path / "modest.zip"
    if form == "folder":
        source = make_folder(files, tmp_path / "release")
        pack = pack_folder
    else:
        source = make_zip(files, tmp_path / "in.zip", compression=zipfile.ZIP_DEFLATED)
        pack = repack_zip
    with pytest.raises(
        ArchiveError,
        match=r"bg001_fg001_01_depth_map\.jpeg is 5,000 bytes, over the limit of 4,000 bytes "
        r"\(limits\.member_bytes\)",
    ):
        pack(source, dest, LIMITS.model_copy(update={"member_bytes": 4000}))
    assert not dest.exists()
