"""The decoded-scene cache: what is stored is read back, across processes, and the files go
with the run that made them, or with the next run when it was killed."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import pickle
import resource
import signal
import tempfile
from pathlib import Path
from uuid import uuid4

import numpy as np
import pytest

from depthseg.data.decoded_cache import (
    CACHE_PREFIX,
    DecodedScenes,
    StoredScene,
    cache_bytes,
    remove_abandoned,
)


@pytest.fixture
def temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory caches go in ($TMPDIR), empty."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _scene(size: int, seed: int) -> StoredScene:
    rng = np.random.default_rng(seed)
    return StoredScene(
        rng.integers(0, 256, (size, size, 3), np.uint8),
        rng.integers(0, 256, (size, size), np.uint8),
        rng.integers(0, 2, (size, size), np.uint8),
    )


def _equal(first: StoredScene | None, second: StoredScene) -> bool:
    assert first is not None
    return all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def _cache(scenes: int, sizes: list[int], name: str | None = None) -> DecodedScenes:
    """A cache called ``name``, by default a new one."""
    cache = DecodedScenes.in_temporary_folder(scenes, sizes, name or CACHE_PREFIX + uuid4().hex)
    assert cache is not None
    return cache


def test_a_stored_scene_is_read_back_at_its_size_only(temporary: Path) -> None:
    cache = _cache(5, [16, 24, 16])
    assert cache.sizes == [16, 24] and cache.folder.parent == temporary
    assert cache.folder.name.startswith(CACHE_PREFIX)
    files = sum(path.stat().st_size for path in cache.folder.glob("*.u8"))
    assert files == cache_bytes(5, [16, 24])
    first, last = _scene(16, 0), _scene(16, 1)
    cache.put(0, 16, first)
    cache.put(4, 16, last)
    assert _equal(cache.get(0, 16), first) and _equal(cache.get(4, 16), last)
    assert cache.get(1, 16) is None and cache.get(0, 24) is None
    stored = cache.get(0, 16)
    assert stored is not None and not any(image.flags.writeable for image in stored)
    cache.put(0, 32, _scene(32, 2))  # a size the run does not train at: not stored
    assert cache.get(0, 32) is None


def test_an_image_of_another_size_is_refused(temporary: Path) -> None:
    cache = _cache(2, [16])
    with pytest.raises(ValueError, match="768 bytes"):
        cache.put(0, 16, _scene(8, 0)._replace(bg_fg=np.zeros((8, 8, 3), np.uint8)))
    assert cache.get(0, 16) is None


def test_a_scene_stored_by_a_forked_worker_is_read_by_the_run(temporary: Path) -> None:
    cache = _cache(3, [16])
    cache.get(0, 16)  # this process maps the file before the fork, as a loader's parent may
    scene = _scene(16, 3)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's exit status carries the result
        cache.put(2, 16, scene)
        os._exit(0)
    assert os.waitpid(child, 0)[1] == 0
    assert _equal(cache.get(2, 16), scene)
    # A pickled copy, as a spawned worker gets, reads the same files.
    assert _equal(pickle.loads(pickle.dumps(cache)).get(2, 16), scene)


def test_a_write_that_falls_short_stores_nothing_and_training_goes_on(temporary: Path) -> None:
    cache = _cache(3, [16])
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - a worker whose disk fills up under it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        # Files end 100 bytes into the first scene's bg_fg for this process: a short write.
        resource.setrlimit(resource.RLIMIT_FSIZE, (3 + 100, resource.RLIM_INFINITY))
        with contextlib.redirect_stdout(io.StringIO()) as said:
            cache.put(0, 16, _scene(16, 5))
            cache.put(1, 16, _scene(16, 6))
        os.write(writing, f"{cache.get(0, 16) is None} {said.getvalue()}".encode())
        os._exit(0)
    assert os.waitpid(child, 0)[1] == 0
    nothing_stored, said = os.read(reading, 4096).decode().split(" ", 1)
    assert nothing_stored == "True" and said.count("\n") == 1  # said once
    assert f"train.decoded_cache: cannot use {cache.folder} (wrote 100 of 768 bytes)" in said
    assert "decodes every epoch from now on" in said
    assert cache.get(0, 16) is None  # nor for the others: its flag was never written
    cache.put(0, 16, scene := _scene(16, 7))  # this process can still store
    assert _equal(cache.get(0, 16), scene)


def test_the_files_go_with_the_run_but_not_with_a_worker(temporary: Path) -> None:
    cache = _cache(4, [16])
    folder = cache.folder
    child = os.fork()
    if child == 0:  # pragma: no cover - a worker dropping its copy
        del cache
        gc.collect()
        os._exit(0)
    assert os.waitpid(child, 0)[1] == 0
    assert folder.is_dir()
    del cache
    gc.collect()
    assert not folder.exists() and not list(temporary.iterdir())


def test_the_next_run_removes_the_cache_of_a_killed_one_and_no_other(temporary: Path) -> None:
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - a run killed before it could remove its cache
        cache = _cache(2, [16])
        os.write(writing, str(cache.folder).encode())
        signal.pause()
    killed = Path(os.read(reading, 4096).decode())
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    unrelated = temporary / f"{CACHE_PREFIX}unrelated"  # holds no lock file: not a cache
    unrelated.mkdir()
    assert killed.is_dir()
    alive = _cache(2, [16])
    assert not killed.exists() and unrelated.is_dir() and alive.folder.is_dir()
    remove_abandoned(temporary)  # its owner, this process, is alive
    assert alive.folder.is_dir()


def test_another_process_of_the_run_opens_the_cache_by_name_and_leaves_it(
    temporary: Path,
) -> None:
    name = f"{CACHE_PREFIX}run-train"
    assert DecodedScenes.made_by_another(name, 3, [16]) is None
    owner = _cache(3, [16], name)
    other = DecodedScenes.made_by_another(name, 3, [16])
    assert other is not None and owner.folder == other.folder == temporary / name
    scene = _scene(16, 4)
    other.put(1, 16, scene)
    assert _equal(owner.get(1, 16), scene)
    del other
    gc.collect()
    assert owner.folder.is_dir()


def test_a_cache_larger_than_half_the_free_disk_is_not_made(temporary: Path, capsys) -> None:
    assert DecodedScenes.in_temporary_folder(10**9, [160], f"{CACHE_PREFIX}large") is None
    said = capsys.readouterr().out
    needed = cache_bytes(10**9, [160]) / 2**30
    assert f"train.decoded_cache: 1000000000 scenes at [160] px need {needed:.1f} GiB" in said
    assert "decoding every epoch instead" in said and "TMPDIR" in said
    assert not list(temporary.iterdir())
