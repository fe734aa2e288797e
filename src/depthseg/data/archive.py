"""The dataset's on-disk form: one uncompressed zip in the release layout, read in place.

DVC hashes one 6.6 GB file in seconds but 1.2 million small files in many minutes, so every
source is packed into a single archive. Members are stored, not deflated (JPEG and PNG do not
compress further), so a member is a byte range of the archive that the dataset reads directly.
The member table is read from the zip's central directory with one tight loop: about
10x faster than ``zipfile.ZipFile`` on 1.2 million entries.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from depthseg.core.errors import DepthsegError
from depthseg.core.files import replaced_atomically
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
    folder, sep, _ = name.partition("/")
    if not sep:
        return name in (layout.FILE_MAP, layout.BBOX_FILE)
    return folder in layout.FOLDERS and not name.endswith("/")


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


#: No member of the release comes near this (images are tens of KB, file_map.txt of 400,000
#: scenes about 20 MB): anything larger is a wrong file, or a zip bomb, and is refused.
MAX_MEMBER_BYTES = 256 * 1024 * 1024


def _check_size(name: str, size: int, source: Path, limit: int) -> None:
    if size > limit:
        raise ArchiveError(
            f"{source}: {name} is {size:,} bytes, over the limit of {limit:,} bytes for one "
            "member; it is not part of the MODEST layout: remove it from the dataset"
        )


def _folder_file(source: Path, root: Path, name: str) -> Path:
    """``source/name``, a regular file; a symlink is followed only to a file inside the folder
    (a link to a private file must not end up in the archive, or in a DVC remote)."""
    path = source / name
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(root):
            raise ArchiveError(
                f"{path} is a symlink to {target}, outside the dataset folder {root}; copy the "
                "file into the folder (or remove the link) and fetch again"
            )
        path = target
    return path


def pack_folder(
    source: Path,
    dest: Path,
    progress: Callable[[int], None] | None = None,
    limit: int = MAX_MEMBER_BYTES,
) -> int:
    """Pack a folder in the release layout into ``dest``; return the number of files."""
    if not (source / layout.FILE_MAP).is_file():
        raise ArchiveError(
            f"{source}: no {layout.FILE_MAP} in this folder; data.path must be the folder that "
            f"holds {', '.join(layout.FOLDERS)} and {layout.FILE_MAP}"
        )
    root = source.resolve()
    names = [name for name in (layout.FILE_MAP, layout.BBOX_FILE) if (source / name).is_file()]
    for folder in layout.FOLDERS:
        if (source / folder).is_dir():
            with os.scandir(source / folder) as entries:
                names += sorted(f"{folder}/{e.name}" for e in entries if e.is_file())
    files = [_folder_file(source, root, name) for name in names]  # all refused before writing
    with atomic_zip(dest) as archive:
        for name, path in zip(names, files, strict=True):
            _check_size(name, path.stat().st_size, source, limit)
            add_member(archive, name, path.read_bytes())
            if progress:
                progress(1)
    return len(names)


def _read_limited(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: Path, limit: int
) -> bytes:
    """A member's bytes, never more than ``limit`` of them whatever its header claims."""
    with archive.open(info) as member:
        data = member.read(limit + 1)
    _check_size(info.filename, len(data), source, limit)
    return data


def repack_zip(
    source: Path,
    dest: Path,
    progress: Callable[[int], None] | None = None,
    limit: int = MAX_MEMBER_BYTES,
) -> int:
    """Copy the layout members of any zip (deflated or not) into a stored zip at ``dest``."""
    try:
        with zipfile.ZipFile(source) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            names = [safe_member_name(info.filename, source) for info in infos]
            root = _layout_root(names, source)
            selected = [
                (info, name[len(root) :])
                for info, name in zip(infos, names, strict=True)
                if name.startswith(root) and is_layout_member(name[len(root) :])
            ]
            selected.sort(key=lambda pair: pair[1])
            for info, _ in selected:  # declared sizes: refuse before writing anything
                _check_size(info.filename, info.file_size, source, limit)
            with atomic_zip(dest) as packed:
                for info, name in selected:
                    add_member(packed, name, _read_limited(archive, info, source, limit))
                    if progress:
                        progress(1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as error:
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

    def read(self, header_offset: int, size: int) -> bytes:
        fd = self._descriptor()
        header = os.pread(fd, _LOCAL_HEADER_SIZE, header_offset)
        if header[:4] != b"PK\x03\x04":
            raise ArchiveError(
                f"{self.path}: no member at byte {header_offset}; the index is stale, "
                "run `dvc repro index`"
            )
        name_len, extra_len = struct.unpack_from("<2H", header, 26)
        return os.pread(fd, size, header_offset + _LOCAL_HEADER_SIZE + name_len + extra_len)

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
