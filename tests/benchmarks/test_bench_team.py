"""bench_team.py prints what a tracking store costs per epoch."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_tracking_table_has_a_row_per_store(tmp_path: Path) -> None:
    stores = [f"sqlite:///{tmp_path / name}" for name in ("a.db", "b.db")]
    command = [sys.executable, str(REPO / "benchmarks/bench_team.py"), "--epochs", "2"]
    for store in stores:
        command += ["--tracking-uri", store]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for store in stores:
        assert re.search(rf"\| {re.escape(store)} \| \d+ \|", result.stdout), result.stdout
