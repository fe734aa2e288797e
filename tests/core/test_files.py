"""Atomic outputs: a file is replaced whole or not at all, by any number of writers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from depthseg.core.files import replaced_atomically, write_json


def test_a_write_replaces_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "out" / "metrics.json"
    write_json(target, {"a": 1})
    write_json(target, {"a": 2})
    assert target.read_text().strip().endswith("}") and '"a": 2' in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_a_failed_write_keeps_the_old_file_and_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "history.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), replaced_atomically(target) as partial:
        partial.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]


WRITE_MANY = (
    "import pathlib, sys\n"
    "from depthseg.core.files import replaced_atomically\n"
    "for _ in range(40):\n"
    "    with replaced_atomically(pathlib.Path(sys.argv[1])) as partial:\n"
    "        partial.write_text(sys.argv[2] * 100_000)\n"
)


def test_two_processes_writing_one_file_never_collide(tmp_path: Path) -> None:
    target = tmp_path / "best_params.yaml"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITE_MANY, str(target), marker]) for marker in "ab"
    ]
    while any(writer.poll() is None for writer in writers):
        if target.exists():
            assert target.read_text() in ("a" * 100_000, "b" * 100_000)  # whole, one writer's
    assert [writer.wait() for writer in writers] == [0, 0]
    assert target.read_text() in ("a" * 100_000, "b" * 100_000)
    assert [p.name for p in tmp_path.iterdir()] == ["best_params.yaml"]


def test_a_killed_writers_leftover_is_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "modest.zip"
    script = (
        "import os, sys, pathlib\n"
        "from depthseg.core.files import replaced_atomically\n"
        "with replaced_atomically(pathlib.Path(sys.argv[1])) as partial:\n"
        "    partial.write_bytes(b'x' * 1000)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(target)])
    assert killed.returncode == -9
    [leftover] = tmp_path.iterdir()
    assert leftover.name.startswith(".modest.zip.") and leftover.name.endswith(".partial")
    mine = tmp_path / f".modest.zip.{os.getpid()}.0.partial"  # a live writer's: kept
    mine.write_bytes(b"in progress")
    with replaced_atomically(target) as partial:
        partial.write_bytes(b"complete")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, "modest.zip"])


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="zombies are read from /proc")
def test_a_killed_writer_not_yet_reaped_counts_as_gone(tmp_path: Path) -> None:
    # Killed with its process group, a stage's writer stays a zombie until someone reaps it.
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    os.kill(writer.pid, 9)
    while Path(f"/proc/{writer.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        time.sleep(0.01)  # the kill is delivered asynchronously
    leftover = tmp_path / f".modest.zip.{writer.pid}.0.partial"
    leftover.write_bytes(b"half")
    try:
        with replaced_atomically(tmp_path / "modest.zip") as partial:
            partial.write_bytes(b"complete")
        assert [p.name for p in tmp_path.iterdir()] == ["modest.zip"]
    finally:
        writer.wait()


def test_a_folder_is_swapped_whole(tmp_path: Path) -> None:
    target = tmp_path / "predictions"
    target.mkdir()
    (target / "old.png").write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), replaced_atomically(target) as folder:
        folder.mkdir()
        (folder / "new.png").write_bytes(b"new")
        raise KeyboardInterrupt
    assert [p.name for p in target.iterdir()] == ["old.png"]
    with replaced_atomically(target) as folder:
        folder.mkdir()
        (folder / "new.png").write_bytes(b"new")
    assert [p.name for p in target.iterdir()] == ["new.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["predictions"]
