"""Scene images decoded once per run and size, then read back by every later epoch.

Decoding three JPEGs is most of a loader worker's time (see docs/benchmarks.md, Input), and a
training reads each scene at the same size again every epoch. So the first read of a scene at a
size stores its decoded ``bg_fg``, ``depth`` and ``mask`` in a file of the run's own (one per
size, in a temporary folder, removed when the run ends, or by the next run if it was killed), and
later reads, by any loader worker, copy them from there. The pixels are those of the decoding,
so training gives the same result with the cache and without it. Backgrounds repeat across
scenes and have their own cache in each process (``dataset.DecodedImages``).

A file holds, for N scenes at size S: N bytes saying which scenes are stored, then N x S x S x 3
``bg_fg``, N x S x S ``depth``, N x S x S ``mask``. Its pages are allocated as scenes arrive. A
scene is stored by the one worker that read it in an epoch (its flag after its images, so a
reader that sees the flag finds the images) and read by any worker in later epochs.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

#: How the name of a cache's folder begins.
CACHE_PREFIX = "depthseg-decoded-"
#: The file whose lock the cache's owner holds while it lives.
LOCK_NAME = "owner.lock"
#: Bytes a scene takes at size S: ``bg_fg`` (3 channels), ``depth`` and ``mask`` (1 each).
CHANNELS = 5


def _file_name(size: int) -> str:
    return f"{size}px.u8"


class StoredScene(NamedTuple):
    """A scene's decoded images: ``bg_fg`` S x S x 3, ``depth`` and ``mask`` S x S, uint8."""

    bg_fg: np.ndarray
    depth: np.ndarray
    mask: np.ndarray


def cache_bytes(scenes: int, sizes: Iterable[int]) -> int:
    """Disk the cache of ``scenes`` scenes at each of ``sizes`` takes once every scene is in."""
    return sum(scenes * (1 + CHANNELS * size * size) for size in set(sizes))


class _SizeFile:
    """The stored scenes of one size, mapped into this process to be read, and written with
    ``pwrite``: written through a mapping, a fresh sparse file takes a page fault per page (on
    AMD 430 us a scene at 160 px, against 66-68 with ``pwrite``; 42 and 40-50 at 96 px)."""

    def __init__(self, path: Path, scenes: int, size: int) -> None:
        self.descriptor = os.open(path, os.O_RDWR)
        self.pid = os.getpid()
        self.scene_bytes = size * size
        plane = scenes * self.scene_bytes
        self.offsets = (scenes, scenes + 3 * plane, scenes + 4 * plane)
        self.stored = np.memmap(path, np.uint8, "r", 0, (scenes,))
        self.bg_fg = np.memmap(path, np.uint8, "r", scenes, (scenes, size, size, 3))
        self.depth = np.memmap(path, np.uint8, "r", self.offsets[1], (scenes, size, size))
        self.mask = np.memmap(path, np.uint8, "r", self.offsets[2], (scenes, size, size))

    def write(self, index: int, scene: StoredScene) -> None:
        for offset, image, channels in zip(self.offsets, scene, (3, 1, 1), strict=True):
            data = np.ascontiguousarray(image, np.uint8)
            if data.size != self.scene_bytes * channels:
                raise ValueError(f"a stored image must have {self.scene_bytes * channels} bytes")
            written = os.pwrite(self.descriptor, data, offset + index * data.size)
            if written != data.size:  # a file size limit lets a write fall short
                raise OSError(f"wrote {written} of {data.size} bytes")
        os.pwrite(self.descriptor, b"\x01", index)

    def __del__(self) -> None:
        if self.pid == os.getpid():
            os.close(self.descriptor)


def _remove(folder: Path, creator: int, lock: int) -> None:
    # Forked loader workers inherit the finalizer; only the run's own process removes the files.
    if os.getpid() == creator:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(lock)


def remove_abandoned(root: Path) -> None:
    """Remove the caches under ``root`` whose run ended without removing its own (killed, out
    of memory): no process holds their owner's lock any more. Only this user's folders: a
    shared /tmp holds others'."""
    for folder in root.glob(f"{CACHE_PREFIX}*"):
        if folder.is_symlink() or folder.lstat().st_uid != os.getuid():
            continue
        try:
            lock = os.open(folder / LOCK_NAME, os.O_RDWR)
        except OSError:
            continue  # not a cache
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its run is alive
        finally:
            os.close(lock)
        shutil.rmtree(folder, ignore_errors=True)


class DecodedScenes:
    """Decoded scene images of ``scenes`` scenes at each of ``sizes``, in the files of a
    ``folder`` that ``in_temporary_folder`` made."""

    def __init__(self, folder: Path, scenes: int, sizes: Iterable[int]) -> None:
        self.folder = folder
        self.scenes = scenes
        self.sizes = sorted(set(sizes))
        self._files: dict[int, _SizeFile] = {}
        self._pid = os.getpid()

    @classmethod
    def in_temporary_folder(
        cls, scenes: int, sizes: Iterable[int], name: str
    ) -> DecodedScenes | None:
        """A new cache in the temporary directory ($TMPDIR), in a folder called ``name``, removed
        when it is collected or this process exits; or None, saying why, when it would take more
        than half the disk space free there.

        This process holds a lock on the folder while it lives, so that a later run removes the
        folder of one that was killed first. The folder gets its name only once locked."""
        sizes = sorted(set(sizes))
        needed = cache_bytes(scenes, sizes)
        root = Path(tempfile.gettempdir())
        remove_abandoned(root)
        free = shutil.disk_usage(root).free
        if needed > free // 2:
            print(
                f"train.decoded_cache: {scenes} scenes at {sizes} px need "
                f"{needed / 2**30:.1f} GiB, more than half the {free / 2**30:.1f} GiB free in "
                f"{root}; decoding every epoch instead (set TMPDIR to a larger disk)"
            )
            return None
        staging = Path(tempfile.mkdtemp(prefix=f".{CACHE_PREFIX}", dir=root))
        lock = os.open(staging / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        for size in sizes:
            with open(staging / _file_name(size), "wb") as file:  # sparse: pages come as used
                file.truncate(cache_bytes(scenes, [size]))
        folder = root / name
        os.rename(staging, folder)  # refuses to replace a folder that has files
        cache = cls(folder, scenes, sizes)
        weakref.finalize(cache, _remove, folder, os.getpid(), lock)
        return cache

    @classmethod
    def made_by_another(cls, name: str, scenes: int, sizes: Iterable[int]) -> DecodedScenes | None:
        """The cache another process of the run (DDP's, on this machine) made as ``name``, if it
        made one; that process removes it."""
        folder = Path(tempfile.gettempdir()) / name
        return cls(folder, scenes, sizes) if folder.is_dir() else None

    def _file(self, size: int) -> _SizeFile | None:
        if self._pid != os.getpid():  # a forked or spawned worker maps the files itself
            self._files, self._pid = {}, os.getpid()
        if size not in self.sizes:
            return None
        if size not in self._files:
            try:
                self._files[size] = _SizeFile(self.folder / _file_name(size), self.scenes, size)
            except OSError as error:
                self._give_up(error)
                return None
        return self._files[size]

    def _give_up(self, error: OSError) -> None:
        """This process decodes from now on: a full disk or a removed folder ends no training."""
        self.sizes = []
        print(
            f"train.decoded_cache: cannot use {self.folder} ({error}); this process decodes "
            "every epoch from now on",
            flush=True,
        )

    def get(self, index: int, size: int) -> StoredScene | None:
        """Scene ``index`` at ``size`` (read-only views of the file), if it is stored."""
        file = self._file(size)
        if file is None or not file.stored[index]:
            return None
        return StoredScene(file.bg_fg[index], file.depth[index], file.mask[index])

    def put(self, index: int, size: int, scene: StoredScene) -> None:
        """Store scene ``index`` at ``size``; the flag last, once its images are in."""
        file = self._file(size)
        if file is None:
            return
        try:
            file.write(index, scene)
        except OSError as error:  # the scene is not flagged: it is decoded when read again
            self._give_up(error)

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_files": {}, "_pid": -1}
