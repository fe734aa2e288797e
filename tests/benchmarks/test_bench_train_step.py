"""bench_train_step.py on the tiny pipeline's index: the variant table and the backward profile."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import torch
from markdown_tables import markdown_tables
from repro_project import REPO, run

from depthseg.core.params_file import load_params
from depthseg.engine import compute
from depthseg.models.dsresnet import DSResNet

SCRIPT = REPO / "benchmarks" / "bench_train_step.py"
sys.path.insert(0, str(SCRIPT.parent))
import bench_train_step  # noqa: E402


@pytest.mark.parametrize(
    ("device", "native_bf16", "names"),
    [
        ("cpu", True, ["fp32, contiguous", "fp32, channels_last",
                       "bf16 autocast, channels_last (default here)",
                       "bf16 autocast, channels_last, torch.compile"]),
        # Emulated bf16 would take minutes a step: no bf16 variant at all.
        ("cpu", False, ["fp32, contiguous", "fp32, channels_last (default here)",
                        "fp32, channels_last, torch.compile"]),
        ("cuda", True, ["fp32, contiguous", "fp32, channels_last",
                        "bf16 autocast, channels_last (default here)",
                        "fp16 autocast + GradScaler, channels_last",
                        "bf16 autocast, channels_last, torch.compile"]),
        ("cuda", False, ["fp32, contiguous", "fp32, channels_last",
                         "fp16 autocast + GradScaler, channels_last (default here)",
                         "fp16 autocast + GradScaler, channels_last, torch.compile"]),
    ],
)  # fmt: skip
def test_the_variants_are_what_the_device_computes_natively(
    monkeypatch: pytest.MonkeyPatch, device: str, native_bf16: bool, names: list[str]
) -> None:
    monkeypatch.setattr(compute, "cpu_has_native_bf16", lambda: native_bf16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation: native_bf16)
    train = load_params().train
    variants = bench_train_step.chosen_variants(torch.device(device), train, compiled=True)
    assert list(variants) == names
    assert next(iter(variants.values())) == bench_train_step.EAGER_FP32


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        (["train.precision=fp32", "train.channels_last=false"],
         ["fp32, contiguous (default here)", "fp32, channels_last"]),
        (["train.compile=true"],
         ["fp32, contiguous", "fp32, channels_last",
          "fp32, channels_last, torch.compile (default here)"]),
    ],
)  # fmt: skip
def test_params_that_choose_another_default_mark_it_once(
    monkeypatch: pytest.MonkeyPatch, overrides: list[str], names: list[str]
) -> None:
    monkeypatch.setattr(compute, "cpu_has_native_bf16", lambda: False)
    train = load_params(overrides=overrides).train
    variants = bench_train_step.chosen_variants(torch.device("cpu"), train, compiled=False)
    assert list(variants) == names


@pytest.mark.slow
def test_the_variants_are_timed_against_eager_fp32(pipeline) -> None:
    project, env = pipeline
    command = [sys.executable, str(SCRIPT), "--no-compile", "--sizes", "32", "--batch", "2"]
    output = run([*command, "--rounds", "1", "--steps", "1"], project, env).stdout
    (rows,) = markdown_tables(output)
    native_bf16 = compute.autocast_dtype(torch.device("cpu"), "auto") is torch.bfloat16
    expected = bench_train_step.chosen_variants(
        torch.device("cpu"), load_params().train, compiled=False
    )
    assert [row[1] for row in rows] == list(expected)
    assert rows[0][3] == "1.00x"
    assert all(float(row[2]) > 0 for row in rows)
    # Arithmetic rate and its share of each measured peak: bf16's only where it is native.
    header = next(line for line in output.splitlines() if line.startswith("| size"))
    peaks = ["bf16", "fp32"] if native_bf16 else ["fp32"]
    assert header.endswith(" | ".join(f"of {name} peak" for name in peaks) + " |")
    for row in rows:
        assert float(row[4]) > 0 and len(row) == 5 + len(peaks)
        assert all(share.endswith("%") for share in row[5:])
    measured = dict(re.findall(r"(bf16|fp32) (\d+) GFLOP/s", output))
    assert list(measured) == peaks and all(int(value) > 0 for value in measured.values())


@pytest.mark.slow
def test_the_profile_accounts_for_every_convolution_by_map_size(pipeline) -> None:
    project, env = pipeline
    command = [sys.executable, str(SCRIPT), "--profile", "--sizes", "32", "--batch", "2"]
    (rows,) = markdown_tables(run(command, project, env).stdout)
    # DSResNet halves its maps five times: 32 px goes down to 1x1.
    assert [row[0] for row in rows] == ["1x1", "2x2", "4x4", "8x8", "16x16", "32x32"]
    convolutions = sum(isinstance(module, torch.nn.Conv2d) for module in DSResNet(1.0).modules())
    assert sum(int(row[1]) for row in rows) == convolutions
    for column in (3, 4):  # shares of time and of FLOPs, rounded to whole percents
        assert sum(int(row[column].rstrip("%")) for row in rows) == pytest.approx(100, abs=3)


def test_the_profile_option_is_documented() -> None:
    result = run([sys.executable, str(SCRIPT), "--help"], Path.cwd(), dict(os.environ))
    assert "--profile" in result.stdout
