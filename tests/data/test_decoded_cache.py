"""The decoded-scene cache: what is stored is read back, across processes, and the files go
with the run that made them."""

from __future__ import annotations

import gc
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest

from depthseg.data.decoded_cache import DecodedScenes, StoredScene, cache_bytes


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


def test_a_stored_scene_is_read_back_at_its_size_only(tmp_path: Path) -> None:
    cache = DecodedScenes(tmp_path, scenes=5, sizes=[16, 24, 16])
    assert cache.sizes == [16, 24]
    assert sum(path.stat().st_size for path in tmp_path.iterdir()) == cache_bytes(5, [16, 24])
    first, last = _scene(16, 0), _scene(16, 1)
    cache.put(0, 16, first)
    cache.put(4, 16, last)
    assert _equal(cache.get(0, 16), first) and _equal(cache.get(4, 16), last)
    assert cache.get(1, 16) is None and cache.get(0, 24) is None
    stored = cache.get(0, 16)
    assert stored is not None and not any(image.flags.writeable for image in stored)
    cache.put(0, 32, _scene(32, 2))  # a size the run does not train at: not stored
    assert cache.get(0, 32) is None


def test_an_image_of_another_size_is_refused(tmp_path: Path) -> None:
    cache = DecodedScenes(tmp_path, scenes=2, sizes=[16])
    with pytest.raises(ValueError, match="768 bytes"):
        cache.put(0, 16, _scene(8, 0)._replace(bg_fg=np.zeros((8, 8, 3), np.uint8)))
    assert cache.get(0, 16) is None


def test_a_scene_stored_by_a_forked_worker_is_read_by_the_run(tmp_path: Path) -> None:
    cache = DecodedScenes(tmp_path, scenes=3, sizes=[16])
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


def test_the_files_go_with_the_run_but_not_with_a_worker() -> None:
    cache = DecodedScenes.in_temporary_folder(4, [16])
    assert cache is not None
    folder = cache.folder
    assert folder.parent == Path(tempfile.gettempdir()) and folder.is_dir()
    child = os.fork()
    if child == 0:  # pragma: no cover - a worker dropping its copy
        del cache
        gc.collect()
        os._exit(0)
    assert os.waitpid(child, 0)[1] == 0
    assert folder.is_dir()
    del cache
    gc.collect()
    assert not folder.exists()


def test_another_process_of_the_run_opens_the_cache_by_name_and_leaves_it(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert DecodedScenes.made_by_another("depthseg-decoded-run-train", 3, [16]) is None
    owner = DecodedScenes.in_temporary_folder(3, [16], "depthseg-decoded-run-train")
    other = DecodedScenes.made_by_another("depthseg-decoded-run-train", 3, [16])
    assert owner is not None and other is not None
    assert owner.folder == other.folder == tmp_path / "depthseg-decoded-run-train"
    scene = _scene(16, 4)
    other.put(1, 16, scene)
    assert _equal(owner.get(1, 16), scene)
    del other
    gc.collect()
    assert owner.folder.is_dir()


def test_a_cache_larger_than_half_the_free_disk_is_not_made(capsys) -> None:
    assert DecodedScenes.in_temporary_folder(10**9, [160]) is None
    said = capsys.readouterr().out
    needed = cache_bytes(10**9, [160]) / 2**30
    assert f"train.decoded_cache: 1000000000 scenes at [160] px need {needed:.1f} GiB" in said
    assert "decoding every epoch instead" in said and "TMPDIR" in said
