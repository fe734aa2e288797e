"""bench_serve.py loads the real served champion with good scenes and bombs, and says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks/bench_serve.py"


def test_the_server_refuses_every_bomb_and_answers_every_scene(pipeline, modest_mini) -> None:
    project, env = pipeline
    command = [sys.executable, str(SCRIPT), "--project", str(project), "--data", str(modest_mini),
               "--requests", "40", "--clients", "2"]  # fmt: skip
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("| clients")))
    row = [cell.strip() for cell in lines[header + 2].strip("|").split("|")]
    assert row[:2] == ["2", "40"] and float(row[2]) > 0
    assert row[-2:] == ["0", "0"]  # no good request failed, no bomb was accepted
    assert any(line.startswith("| network |") for line in lines)
