"""The dataset's on-disk form: one uncompressed zip in the release layout, read in place.

DVC hashes one 6.6 GB file in seconds but 1.2 million small files in many minutes, so every
source is packed into a single archive. Members are stored, not deflated (JPEG and PNG do not
compress further), so a member is a byte range of the archive that the dataset reads directly.
The member table is read from the zip's central directory with one tight loop: about
10x faster than ``zipfile.ZipFile`` on 1.2 million entries.
"""

from __future__ import annotations

import os
import shutil
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from depthseg.core.errors import DepthsegError
from depthseg.core.files import replaced_atomically
from depthseg.core.params import LimitsParams
from depthseg.data import layout

#: A fixed timestamp makes archives with the same content byte-identical (stable DVC hashes).
_EPOCH = (1980, 1, 1, 0, 0, 0)

_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_ENTRY = struct.Struct("<4s6H3L5H2L")
_LOCAL_HEADER_SIZE = 30
_MAX_COMMENT = 0xFFFF
_FULL32 = 0xFFFFFFFF


class ArchiveError(DepthsegError, ValueError):
    """An archive or folder cannot be used as a dataset; the message says why and what to do."""


class Member(NamedTuple):
    header_offset: int
    size: int
    method: int
    crc: int  # CRC-32 of the member's bytes, as the central directory records it


@contextmanager
def atomic_zip(dest: Path) -> Iterator[zipfile.ZipFile]:
    """Write a stored zip next to ``dest`` and move it into place only when complete."""
    with (
        replaced_atomically(dest) as partial,
        zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED, allowZip64=True) as archive,
    ):
        yield archive


def add_member(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def safe_member_name(name: str, source: Path) -> str:
    """The member's path inside the dataset, refusing any that would land outside it."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ArchiveError(
            f"{source}: entry {name!r} would land outside the dataset folder; refusing to read "
            "this archive (re-download it or repack it without that entry)"
        )
    return str(path)


def is_layout_member(name: str) -> bool:
    """file_map.txt and bbox.txt at the root, and images directly inside the release's folders:
    nothing else of a folder or archive is copied (no ``bg/id_rsa``, no ``bg/.git/``)."""
    folder, sep, file = name.partition("/")
    if not sep:
        return name in TEXT_MEMBERS
    return (
        folder in layout.FOLDERS
        and "/" not in file
        and PurePosixPath(file).suffix.lower() in layout.IMAGE_SUFFIXES
    )


def _layout_root(names: Iterable[str], source: Path) -> str:
    """'' when file_map.txt is at the root, 'top/' when it sits under one top folder."""
    candidates = {
        name[: -len(layout.FILE_MAP)]
        for name in names
        if name == layout.FILE_MAP or name.endswith("/" + layout.FILE_MAP)
    }
    roots = sorted(root for root in candidates if root.count("/") <= 1)
    if len(roots) != 1:
        found = f"found it at {roots}" if roots else "found none"
        raise ArchiveError(
            f"{source}: expected one {layout.FILE_MAP} at the root or under one top folder, "
            f"{found}; point data.path at a copy of the MODEST Museum release"
        )
    return roots[0]


#: The release's text files: small, read whole by the index.
TEXT_MEMBERS = (layout.FILE_MAP, layout.BBOX_FILE)
#: Far more directory per entry than names of the release need (about 90 bytes).
_MAX_ENTRY_BYTES = 1024
#: Below this a member cannot fill a disk whatever it deflates to (the total is checked too).
_RATIO_FLOOR = 64 * 1024


def _size_key(name: str) -> str:
    """The limit a member's size is checked against."""
    return "text_bytes" if name.rsplit("/", 1)[-1] in TEXT_MEMBERS else "member_bytes"


def _refuse(refusal: str | None, advice: str) -> None:
    if refusal:
        raise ArchiveError(f"{refusal}; {advice}" if advice else refusal)


_NOT_LAYOUT = "otherwise it is not part of the MODEST layout: remove it from the dataset"


def _check_room(dest: Path, needed: int, source: Path) -> None:
    """Refuse before writing when the copy cannot fit on the disk of ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest.parent).free
    if needed > free:
        raise ArchiveError(
            f"{source}: its files come to {needed:,} bytes, more than the {free:,} bytes free "
            f"on the disk of {dest.parent}; free some space (or this is not the release)"
        )


def _folder_file(source: Path, root: Path, name: str) -> Path:
    """``source/name``, a regular file inside the folder once every link on its way is followed
    (a link to a private file or folder must not end up in the archive, or in a DVC remote)."""
    path = source / name
    try:
        target = path.resolve()
    except (OSError, RuntimeError) as error:  # a loop of links
        raise ArchiveError(f"{path}: cannot follow its links ({error})") from None
    if not target.is_relative_to(root):
        raise ArchiveError(
            f"{path} leads to {target}, outside the dataset folder {root} (through a symlink); "
            "copy the files into the folder (or remove the link) and fetch again"
        )
    return target


def pack_folder(
    source: Path,
    dest: Path,
    limits: LimitsParams,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Pack a folder in the release layout into ``dest``; return the number of files."""
    if not (source / layout.FILE_MAP).is_file():
        raise ArchiveError(
            f"{source}: no {layout.FILE_MAP} in this folder; data.path must be the folder that "
            f"holds {', '.join(layout.FOLDERS)} and {layout.FILE_MAP}"
        )
    root = source.resolve()
    names = [name for name in TEXT_MEMBERS if (source / name).is_file()]
    for folder in layout.FOLDERS:
        if (source / folder).is_dir():
            _folder_file(source, root, folder)  # the folder itself may be a link
            with os.scandir(source / folder) as entries:
                names += sorted(
                    f"{folder}/{e.name}"
                    for e in entries
                    if e.is_file() and is_layout_member(f"{folder}/{e.name}")
                )
    _refuse(limits.exceeded("members", len(names), str(source), "files"), "")
    files = [_folder_file(source, root, name) for name in names]  # all refused before writing
    sizes = [path.stat().st_size for path in files]
    for name, size in zip(names, sizes, strict=True):
        _refuse(limits.exceeded(_size_key(name), size, f"{source}/{name}"), _NOT_LAYOUT)
    _check_room(dest, sum(sizes), source)
    with atomic_zip(dest) as archive:
        for name, path in zip(names, files, strict=True):
            add_member(archive, name, path.read_bytes())
            if progress:
                progress(1)
    return len(names)


def open_zip(path: Path, limits: LimitsParams) -> zipfile.ZipFile:
    """``path`` as a zip, its entry count checked first: Python's zipfile reads the whole
    central directory into objects of about half a kilobyte an entry."""
    with open(path, "rb") as handle:
        entries, directory_size, _ = _end_of_central_directory(handle, path)
    _refuse(limits.exceeded("members", entries, str(path), "files"), "")
    if directory_size > _MAX_ENTRY_BYTES * max(entries, 1):
        raise ArchiveError(
            f"{path}: its directory takes {directory_size:,} bytes for {entries:,} files; "
            "names and fields that long are not the release's: refusing to read it"
        )
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as error:
        raise ArchiveError(f"{path}: not a readable zip archive ({error})") from None


def _check_ratio(what: str, size: int, compressed: int, limits: LimitsParams) -> None:
    ratio = size / max(compressed, 1)
    if size > _RATIO_FLOOR and ratio > limits.compression_ratio:
        raise ArchiveError(
            f"{what}: deflates from {compressed:,} to {size:,} bytes ({ratio:,.0f}x), over the "
            f"limit of {limits.compression_ratio:g}x (limits.compression_ratio); images barely "
            "compress, so this is a zip bomb or not the release"
        )


def read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: Path, limits: LimitsParams, key: str
) -> bytes:
    """A member's bytes, its declared size checked against ``limits.<key>`` and its compression
    against ``limits.compression_ratio`` first, and never more read than the limit."""
    what = f"{source}:{info.filename}"
    _refuse(limits.exceeded(key, info.file_size, what), _NOT_LAYOUT)
    _check_ratio(what, info.file_size, info.compress_size, limits)
    limit = getattr(limits, key)
    with archive.open(info) as member:
        data = member.read(limit + 1)
    _refuse(limits.exceeded(key, len(data), what), _NOT_LAYOUT)  # a header that lied
    return data


def repack_zip(
    source: Path,
    dest: Path,
    limits: LimitsParams,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Copy the layout members of any zip (deflated or not) into a stored zip at ``dest``."""
    with open_zip(source, limits) as archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        names = [safe_member_name(info.filename, source) for info in infos]
        root = _layout_root(names, source)
        selected = [
            (info, name[len(root) :])
            for info, name in zip(infos, names, strict=True)
            if name.startswith(root) and is_layout_member(name[len(root) :])
        ]
        selected.sort(key=lambda pair: pair[1])
        for info, name in selected:  # declared sizes: refuse before writing anything
            what = f"{source}:{info.filename}"
            _refuse(limits.exceeded(_size_key(name), info.file_size, what), _NOT_LAYOUT)
            _check_ratio(what, info.file_size, info.compress_size, limits)
        declared = sum(info.file_size for info, _ in selected)
        _check_ratio(str(source), declared, sum(i.compress_size for i, _ in selected), limits)
        _check_room(dest, declared, source)
        try:
            with atomic_zip(dest) as packed:
                for info, name in selected:
                    data = read_member(archive, info, source, limits, _size_key(name))
                    add_member(packed, name, data)
                    if progress:
                        progress(1)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error) as error:
            raise ArchiveError(f"{source}: not a readable zip archive ({error})") from None
    return len(selected)


def _end_of_central_directory(handle, source: Path) -> tuple[int, int, int]:
    """(entries, central directory size, central directory offset)."""
    size = handle.seek(0, os.SEEK_END)
    tail_size = min(size, _EOCD.size + _MAX_COMMENT)
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0:
        raise ArchiveError(f"{source}: not a zip archive (no end-of-central-directory record)")
    _, _, _, _, entries, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
    if _FULL32 not in (cd_size, cd_offset) and entries != 0xFFFF:
        return entries, cd_size, cd_offset
    locator_at = at - _ZIP64_LOCATOR.size
    signature, _, zip64_offset, _ = _ZIP64_LOCATOR.unpack_from(tail, max(locator_at, 0))
    if signature != b"PK\x06\x07" or locator_at < 0:
        if _FULL32 not in (cd_size, cd_offset):
            return entries, cd_size, cd_offset  # exactly 65535 entries fit without zip64
        raise ArchiveError(f"{source}: damaged zip64 archive (no zip64 locator)")
    handle.seek(zip64_offset)
    record = _ZIP64_EOCD.unpack(handle.read(_ZIP64_EOCD.size))
    return record[7], record[8], record[9]


def _zip64_values(extra: bytes, wanted: int) -> list[int]:
    """The first ``wanted`` 8-byte values of the zip64 extra field (id 1)."""
    at = 0
    while at + 4 <= len(extra):
        field_id, field_size = struct.unpack_from("<2H", extra, at)
        if field_id == 1:
            return list(struct.unpack_from(f"<{wanted}Q", extra, at + 4))
        at += 4 + field_size
    raise ArchiveError("damaged zip64 entry (no zip64 extra field)")


def read_members(path: Path) -> dict[str, Member]:
    """Every entry of the zip's central directory: name -> (header offset, size, method)."""
    with open(path, "rb") as handle:
        entries, cd_size, cd_offset = _end_of_central_directory(handle, path)
        handle.seek(cd_offset)
        directory = handle.read(cd_size)
    members: dict[str, Member] = {}
    at = 0
    unpack = _CENTRAL_ENTRY.unpack_from
    for _ in range(entries):
        fields = unpack(directory, at)
        if fields[0] != b"PK\x01\x02":
            raise ArchiveError(f"{path}: damaged central directory at byte {cd_offset + at}")
        method, crc, size, raw_size, name_len, extra_len, comment_len, offset = (
            fields[4], fields[7], fields[8], fields[9], fields[10], fields[11], fields[12],
            fields[16],
        )  # fmt: skip
        start = at + _CENTRAL_ENTRY.size
        name = directory[start : start + name_len].decode("utf-8", "replace")
        overflowing = (raw_size == _FULL32, size == _FULL32, offset == _FULL32)
        if any(overflowing):
            # zip64 keeps only the overflowing values, in the order raw size, size, offset.
            extra = directory[start + name_len : start + name_len + extra_len]
            values = iter(_zip64_values(extra, sum(overflowing)))
            if overflowing[0]:
                next(values)
            if overflowing[1]:
                size = next(values)
            if overflowing[2]:
                offset = next(values)
        members[name] = Member(offset, size, method, crc)
        at = start + name_len + extra_len + comment_len
    return members


class MemberReader:
    """Reads stored members by byte range; safe across fork (one descriptor per process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = -1

    def _descriptor(self) -> int:
        if self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDONLY)
            self._pid = os.getpid()
        assert self._fd is not None
        return self._fd

    def data_offset(self, header_offset: int) -> int:
        """Where the bytes of the member whose local header is at ``header_offset`` begin."""
        header = os.pread(self._descriptor(), _LOCAL_HEADER_SIZE, header_offset)
        if header[:4] != b"PK\x03\x04":
            raise ArchiveError(
                f"{self.path}: no member at byte {header_offset}; the index is stale, "
                "run `dvc repro index`"
            )
        name_len, extra_len = struct.unpack_from("<2H", header, 26)
        return header_offset + _LOCAL_HEADER_SIZE + name_len + extra_len

    def read(self, header_offset: int, size: int) -> bytes:
        return os.pread(self._descriptor(), size, self.data_offset(header_offset))

    def read_checked(self, header_offset: int, size: int, crc: int, name: str) -> bytes:
        """The member's bytes, checked against its size and CRC-32 from the central directory."""
        data = self.read(header_offset, size)
        if len(data) != size:
            raise ArchiveError(
                f"{self.path}: {name} is cut short ({len(data)} of {size} bytes): the archive "
                "is truncated; run `dvc repro fetch`"
            )
        if zlib.crc32(data) != crc:
            raise ArchiveError(
                f"{self.path}: {name} fails its CRC-32 check: the archive is damaged; run "
                "`dvc repro fetch`"
            )
        return data

    def __getstate__(self) -> dict[str, object]:
        return {"path": self.path, "_fd": None, "_pid": -1}

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
