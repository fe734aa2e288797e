"""index.verify: decode every image of the index once, in parallel, and report the bad ones.

An image is bad when its bytes fail the archive's size or CRC-32 check, when it does not decode,
when it decodes only with the decoder's complaints (a JPEG that is complete but corrupt decodes
into garbage, and libjpeg says so on stderr), or when its size or mode is not the dataset's.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from depthseg.data import layout
from depthseg.data.archive import ArchiveError, MemberReader
from depthseg.data.decoding import DECODE_ERRORS

#: The mode each kind of image must have.
EXPECTED_MODES = {"bg": "RGB", "bg_fg": "RGB", "mask": "L", "depth": "L"}
_CHUNK = 256


class ImageCheck(NamedTuple):
    member: str
    problem: str | None  # a problem kind, or None when the image is fine
    detail: str
    size: tuple[int, int] | None


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


def _check(
    reader: MemberReader, member: str, offset: int, size: int, crc: int, mode: str, stderr: int
) -> ImageCheck:
    try:
        data = reader.read_checked(offset, size, crc, member)
    except ArchiveError as error:
        return ImageCheck(member, "unreadable_image", str(error), None)
    try:
        with Image.open(io.BytesIO(data)) as image:
            found_mode, dimensions = image.mode, image.size
            image.load()
    except DECODE_ERRORS as error:
        return ImageCheck(member, "undecodable_image", f"{member}: {error}", None)
    before = os.lseek(stderr, 0, os.SEEK_END)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    complaints = os.lseek(stderr, 0, os.SEEK_END) - before
    if decoded is None or complaints:
        os.lseek(stderr, before, os.SEEK_SET)
        said = os.read(stderr, min(complaints, 200)).decode(errors="replace").strip()
        return ImageCheck(member, "corrupt_image_data", f"{member}: {said or 'no pixels'}", None)
    if found_mode != mode:
        return ImageCheck(member, "wrong_image_mode", f"{member}: {found_mode}, not {mode}", None)
    return ImageCheck(member, None, "", dimensions)


def _check_chunk(job: tuple[Path, list[tuple[str, int, int, int, str]]]) -> list[ImageCheck]:
    archive_path, items = job
    reader = MemberReader(archive_path)
    with _captured_stderr() as stderr:
        return [_check(reader, *item, stderr) for item in items]


def _images(table: pd.DataFrame) -> list[tuple[str, int, int, int, str]]:
    """Each distinct image of the table once: member, offset, size, CRC-32, expected mode."""
    seen: dict[str, tuple[str, int, int, int, str]] = {}
    for kind in layout.IMAGE_KINDS:
        columns = table[[kind, f"{kind}_offset", f"{kind}_size", f"{kind}_crc"]]
        for member, offset, size, crc in columns.itertuples(index=False):
            seen.setdefault(
                member, (member, int(offset), int(size), int(crc), EXPECTED_MODES[kind])
            )
    return list(seen.values())


def verify_images(archive_path: Path, table: pd.DataFrame, workers: int) -> list[ImageCheck]:
    """The bad images of ``table`` (each distinct image decoded once, by ``workers`` processes).

    Images of a size other than the most common one are bad too (``wrong_image_size``).
    """
    images = _images(table)
    jobs = [(archive_path, images[at : at + _CHUNK]) for at in range(0, len(images), _CHUNK)]
    if workers > 1 and len(jobs) > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            checks = [check for chunk in pool.imap(_check_chunk, jobs) for check in chunk]
    else:
        checks = [check for job in jobs for check in _check_chunk(job)]
    sizes = Counter(check.size for check in checks if check.size is not None)
    usual = sizes.most_common(1)[0][0] if sizes else None
    bad = [check for check in checks if check.problem is not None]
    bad += [
        ImageCheck(
            check.member, "wrong_image_size", f"{check.member}: {check.size}, not {usual}", None
        )
        for check in checks
        if check.size is not None and check.size != usual
    ]
    return bad
