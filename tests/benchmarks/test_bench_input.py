"""bench_input.py on the tiny pipeline's index: every table it prints, with a row per setting."""

from __future__ import annotations

import os
import re
import sys

import pytest
from markdown_tables import markdown_tables
from repro_project import REPO, run

SCRIPT = REPO / "benchmarks" / "bench_input.py"


@pytest.mark.slow
def test_the_bench_prints_each_setting_and_each_sides_share(pipeline) -> None:
    project, env = pipeline
    command = [sys.executable, str(SCRIPT), "--sizes", "32", "--scenes", "48", "--rounds", "1"]
    output = run(command, project, env).stdout
    loader, worker, main = markdown_tables(output)
    workers = sorted({0, 1, 2, os.cpu_count() or 1})
    assert [(row[0], int(row[1])) for row in loader] == [("32", count) for count in workers]
    assert [row[0] for row in worker] == ["32"] and [row[0] for row in main] == ["32"]
    # Each row: the passes after the first (reading the decoded cache), then the first.
    assert all(len(row) == 4 for row in loader) and all(len(row) == 3 for row in (*worker, *main))
    assert all(float(value) > 0 for row in (*loader, *worker, *main) for value in row[-2:])
    assert "decoded cache on" in output
    assert "A worker's share alone" in output and "The main process's share alone" in output
    memory = re.findall(r"worker (\d) at 400,000 rows after 100 batches: (\d+) MB private", output)
    assert [worker for worker, _ in memory] == ["0", "1"]
    assert all(int(megabytes) > 0 for _, megabytes in memory)
