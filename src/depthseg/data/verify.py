"""Every image of the index checked before training reads one, each distinct image once, in
parallel: its header always, its pixels too with ``index.verify: decode``.

The header check refuses what ``limits`` does not admit (too many bytes, pixels or JPEG scans)
and what is no image of an accepted format, before anything decodes it. The full decode (one per
image) finds what a header cannot show: bytes that fail the archive's CRC-32, a truncated file,
a JPEG that is complete but corrupt (it decodes into garbage, and libjpeg says so on stderr), and
a mode or size that is not the dataset's.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from depthseg.core.params import LimitsParams
from depthseg.data import layout
from depthseg.data.archive import ArchiveError, MemberReader
from depthseg.data.image_header import (
    ACCEPTED_FORMATS,
    DECODE_ERRORS,
    ImageError,
    ImageHeader,
    ImageTooLarge,
    checked_header,
)
from depthseg.data.scene_images import range_columns, read_image

#: The mode each kind of image must have.
EXPECTED_MODES = {"bg": "RGB", "bg_fg": "RGB", "mask": "L", "depth": "L"}
_CHUNK = 256
_END_OF_IMAGE = b"\xff\xd9"


class ImageCheck(NamedTuple):
    member: str
    problem: str | None  # a problem kind, or None when the image is fine
    detail: str
    size: tuple[int, int] = (-1, -1)  # width and height of a good image


class _Job(NamedTuple):
    """A chunk of distinct images: compact arrays, so that thousands of chunks cost little."""

    archive_path: Path
    members: np.ndarray  # bytes
    ranges: np.ndarray  # offset, size, CRC-32
    modes: np.ndarray  # index into EXPECTED_MODES' values
    limits: LimitsParams
    decode: bool


_MODES = tuple(EXPECTED_MODES.values())
#: Where an image lies, in the columns of the distinct images' table.
_RANGE = ("offset", "size", "crc")


@contextmanager
def _captured_stderr() -> Iterator[int]:
    """Point this process's file descriptor 2 at a temporary file (C libraries write there)."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield capture.fileno()
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _decode_problem(data: bytes, header: ImageHeader, member: str, stderr: int) -> ImageCheck:
    """Decode once: libjpeg through OpenCV for a JPEG (its complaints heard), Pillow otherwise
    (which says why a broken file fails)."""
    if header.format != "JPEG":
        try:
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
                image.load()
        except DECODE_ERRORS as error:
            return ImageCheck(member, "undecodable_image", f"{member}: {error}")
        return ImageCheck(member, None, "", (header.width, header.height))
    if not data.rstrip(b"\0").endswith(_END_OF_IMAGE):
        detail = f"{member}: truncated (no end-of-image marker)"
        return ImageCheck(member, "undecodable_image", detail)
    before = os.lseek(stderr, 0, os.SEEK_END)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    complaints = os.lseek(stderr, 0, os.SEEK_END) - before
    if decoded is None or complaints:
        os.lseek(stderr, before, os.SEEK_SET)
        said = os.read(stderr, min(complaints, 200)).decode(errors="replace").strip()
        return ImageCheck(member, "corrupt_image_data", f"{member}: {said or 'no pixels'}")
    return ImageCheck(member, None, "", (header.width, header.height))


def _check(
    reader: MemberReader, member: str, ranges: np.ndarray, mode: str, job: _Job, stderr: int
) -> ImageCheck:
    try:
        data = read_image(reader, ranges, member, check=job.decode)
        header = checked_header(data, member, job.limits)
    except ArchiveError as error:
        return ImageCheck(member, "unreadable_image", str(error))
    except ImageTooLarge as error:
        return ImageCheck(member, "oversized_image", str(error))
    except ImageError as error:
        return ImageCheck(member, "not_an_image", str(error))
    if not job.decode:
        return ImageCheck(member, None, "")
    if header.mode != mode:
        return ImageCheck(member, "wrong_image_mode", f"{member}: {header.mode}, not {mode}")
    return _decode_problem(data, header, member, stderr)


def _check_chunk(job: _Job) -> tuple[list[ImageCheck], np.ndarray]:
    """The chunk's bad images, and every image's width and height (-1 for a bad one): a
    compact answer, as the chunks of 1.2 million images add up."""
    reader = MemberReader(job.archive_path)
    with _captured_stderr() as stderr:
        checks = [
            _check(reader, member.decode(), ranges, _MODES[mode], job, stderr)
            for member, ranges, mode in zip(job.members, job.ranges, job.modes, strict=True)
        ]
    sizes = np.array([check.size for check in checks], np.int32).reshape(-1, 2)
    return [check for check in checks if check.problem is not None], sizes


def _distinct_images(table: pd.DataFrame) -> pd.DataFrame:
    """Each distinct image of the table once: member, offset, size, CRC-32, expected mode."""
    frames = [
        pd.DataFrame(
            {
                "member": table[kind],
                **dict(zip(_RANGE, (table[column] for column in range_columns(kind)), strict=True)),
                "mode": _MODES.index(EXPECTED_MODES[kind]),
            }
        )
        for kind in layout.IMAGE_KINDS
    ]
    return pd.concat(frames).drop_duplicates("member").reset_index(drop=True)


def _jobs(archive_path: Path, images: pd.DataFrame, limits: LimitsParams, decode: bool):
    members = np.array(images["member"].str.encode("utf-8").tolist(), dtype=np.bytes_)
    ranges = images[list(_RANGE)].to_numpy(np.int64)
    modes = images["mode"].to_numpy(np.int8)
    for at in range(0, len(images), _CHUNK):
        chunk = slice(at, at + _CHUNK)
        yield _Job(archive_path, members[chunk], ranges[chunk], modes[chunk], limits, decode)


def check_images(
    archive_path: Path, table: pd.DataFrame, limits: LimitsParams, decode: bool, workers: int
) -> list[ImageCheck]:
    """The bad images of ``table``, each distinct image checked once by ``workers`` processes.

    With ``decode``, images of a size other than the most common one are bad too
    (``wrong_image_size``).
    """
    if table.empty:
        return []
    images = _distinct_images(table)
    jobs = _jobs(archive_path, images, limits, decode)
    if workers > 1 and len(images) > _CHUNK:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = list(pool.imap(_check_chunk, jobs))
    else:
        results = [_check_chunk(job) for job in jobs]
    bad = [check for chunk, _ in results for check in chunk]
    if not decode or not results:
        return bad
    sizes = np.concatenate([chunk_sizes for _, chunk_sizes in results])
    good = sizes[:, 0] >= 0
    if not good.any():
        return bad
    found, counts = np.unique(sizes[good], axis=0, return_counts=True)
    usual = tuple(int(side) for side in found[counts.argmax()])
    other = good & (sizes != usual).any(axis=1)
    bad += [
        ImageCheck(member, "wrong_image_size", f"{member}: {tuple(map(int, size))}, not {usual}")
        for member, size in zip(images["member"][other], sizes[other], strict=True)
    ]
    return bad
