"""bench_train_step.py on the tiny pipeline's index: the variant table and the backward profile."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import torch
from repro_project import REPO, run

from depthseg.models.dsresnet import DSResNet

SCRIPT = REPO / "benchmarks" / "bench_train_step.py"


def table_rows(output: str) -> list[list[str]]:
    """The cells of each markdown row under a header, separators left out."""
    rows = [line.strip("|").split("|") for line in output.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[1:] if not row[0].startswith("-")]


@pytest.mark.slow
def test_the_variants_are_timed_against_eager_fp32(pipeline) -> None:
    project, env = pipeline
    command = [sys.executable, str(SCRIPT), "--no-compile", "--sizes", "32", "--batch", "2"]
    output = run([*command, "--rounds", "1", "--steps", "1"], project, env).stdout
    rows = table_rows(output)
    assert [row[1] for row in rows] == [
        "eager fp32, contiguous",
        "fp32, channels_last",
        "bf16 autocast, channels_last (default here)",
    ]
    assert rows[0][3] == "1.00x"
    assert all(float(row[2]) > 0 for row in rows)
    # Arithmetic rate and its shares of the measured peaks, in proportion to samples/s.
    for row in rows:
        gflops, bf16_share, fp32_share = float(row[4]), row[5], row[6]
        assert gflops > 0 and bf16_share.endswith("%") and fp32_share.endswith("%")
    peak = re.search(r"bf16 (\d+) GFLOP/s, fp32 (\d+) GFLOP/s", output)
    assert peak and int(peak.group(1)) > 0 and int(peak.group(2)) > 0


@pytest.mark.slow
def test_the_profile_accounts_for_every_convolution_by_map_size(pipeline) -> None:
    project, env = pipeline
    command = [sys.executable, str(SCRIPT), "--profile", "--sizes", "32", "--batch", "2"]
    rows = table_rows(run(command, project, env).stdout)
    # DSResNet halves its maps five times: 32 px goes down to 1x1.
    assert [row[0] for row in rows] == ["1x1", "2x2", "4x4", "8x8", "16x16", "32x32"]
    convolutions = sum(isinstance(module, torch.nn.Conv2d) for module in DSResNet(1.0).modules())
    assert sum(int(row[1]) for row in rows) == convolutions
    for column in (3, 4):  # shares of time and of FLOPs, rounded to whole percents
        assert sum(int(row[column].rstrip("%")) for row in rows) == pytest.approx(100, abs=3)


def test_the_profile_option_is_documented() -> None:
    result = run([sys.executable, str(SCRIPT), "--help"], Path.cwd(), dict(os.environ))
    assert "--profile" in result.stdout
