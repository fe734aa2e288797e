"""The GPU check script can only run on a CUDA machine; here its syntax, options and refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True
    )


def test_the_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_help_names_every_option() -> None:
    result = run_script("--help")
    assert result.returncode == 0
    assert all(
        option in result.stdout
        for option in ("--epochs", "--scenes", "--workers", "--out", "--help")
    )


def test_an_unknown_option_is_refused_by_name() -> None:
    result = run_script("--gpus", "2")
    assert result.returncode == 2
    assert "unknown option '--gpus'" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_so_and_writes_nothing(tmp_path: Path) -> None:
    result = run_script("--out", str(tmp_path / "gpu.csv"))
    assert result.returncode == 1
    assert "sees no CUDA GPU" in result.stderr
    assert not (tmp_path / "gpu.csv").exists()
