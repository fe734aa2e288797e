"""The fetch stage: the dataset named by ``data.source`` as data/raw/modest.zip."""

from __future__ import annotations

import time
from typing import Any

from depthseg.core.params import Params
from depthseg.core.paths import DOWNLOAD_DIR, RAW_ARCHIVE
from depthseg.data.archive import read_members
from depthseg.data.sources import fetch as fetch_source


def fetch(params: Params, workers: int) -> dict[str, Any]:
    """Write the archive; return its number of files, megabytes and the seconds it took."""
    started = time.perf_counter()
    fetch_source(params.data, params.limits, RAW_ARCHIVE, DOWNLOAD_DIR, workers=workers)
    return {
        "files": len(read_members(RAW_ARCHIVE)),
        "megabytes": RAW_ARCHIVE.stat().st_size / 1e6,
        "seconds": time.perf_counter() - started,
    }
