"""The index stage: the scene table of data/raw/modest.zip and its summary metrics."""

from __future__ import annotations

from typing import Any

from depthseg.core.files import write_json
from depthseg.core.params import Params
from depthseg.core.paths import INDEX_FILE, INDEX_SUMMARY, RAW_ARCHIVE
from depthseg.data.indexing import Problems, build_index, summarize, write_index


def index(params: Params, workers: int) -> tuple[dict[str, Any], Problems]:
    """Write the index and its summary; return the summary and the problems skipped."""
    table, problems = build_index(RAW_ARCHIVE, params.index, params.limits, workers)
    write_index(table, INDEX_FILE, RAW_ARCHIVE)
    summary = summarize(table, problems)
    write_json(INDEX_SUMMARY, summary)
    return summary, problems
