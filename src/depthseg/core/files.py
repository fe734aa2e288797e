"""Writing outputs so that nothing is ever left half-written, lost, or mixed with another writer's.

Every output is written to a temporary sibling with a name of its own (the writer's process id
and a random part), flushed to disk, then renamed over the target: a reader sees the old file or
the new one, never half of one, and two writers of the same file never share a temporary file.
A writer killed outright leaves its temporary file behind; the next write of the same target
removes those of dead processes.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PARTIAL_SUFFIX = ".partial"


def _partial_name(target: Path, pid: int) -> Path:
    return target.with_name(f".{target.name}.{pid}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    # A killed writer stays a zombie until its parent reaps it (in a container whose first
    # process does not reap orphans, never): it exists but will never write again.
    if not Path("/proc/self").exists():  # no /proc (macOS): it exists, so count it alive
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def remove_stale_partials(target: Path) -> list[Path]:
    """Delete temporary files (or folders) of ``target`` left by writers that no longer run."""
    removed = []
    for candidate in target.parent.glob(f".{target.name}.*{PARTIAL_SUFFIX}"):
        pid = candidate.name[len(target.name) + 2 :].split(".")[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            if candidate.is_dir():
                shutil.rmtree(candidate, ignore_errors=True)
            else:
                candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_tree(path: Path) -> None:
    if path.is_dir():
        for child in path.rglob("*"):
            _fsync(child)
    _fsync(path)


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling path to write (a file, or a folder the block creates); it
    replaces ``path`` only if the block succeeds, after reaching the disk.

    A failure (or Ctrl-C) leaves the previous ``path`` intact and no temporary file behind. A
    folder is swapped in by two renames; only between them is there briefly no ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    partial = _partial_name(path, os.getpid())
    try:
        yield partial
        _sync_tree(partial)
        if partial.is_dir() and path.exists():
            retired = _partial_name(path, os.getpid())
            os.replace(path, retired)
            os.replace(partial, path)
            shutil.rmtree(retired)
        else:
            os.replace(partial, path)
        _fsync(path.parent)
    finally:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically, so a reader never sees half a file."""
    with replaced_atomically(path) as partial:
        partial.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
