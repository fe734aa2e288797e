"""Writing outputs so that nothing is ever left half-written."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """Yield a sibling path to write; it replaces ``path`` only if the block succeeds.

    A failure (or Ctrl-C) leaves the previous ``path`` intact and no partial file behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically, so a reader never sees half a file."""
    with replaced_atomically(path) as partial:
        partial.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
