"""The GPU check goes straight through: its wheels for the device and its dry run on this CPU."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
sys.path.insert(0, str(REPO / "benchmarks" / "gpu"))
import prepare_wheels  # noqa: E402

MODULES = ("torch", "albumentations", "pydantic", "depthseg.engine.loop")


def run_check(*args: str, wheels: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "GPU_WHEELS": str(wheels)}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gpu") / "wheels"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu" / "prepare_wheels.py"), "--out", str(out)],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    return out


def test_the_wheels_are_what_the_image_lacks_for_python_3_12(wheels: Path) -> None:
    names = {path.name.split("-")[0].lower() for path in wheels.glob("*.whl")}
    assert {"albumentations", "pydantic", "pydantic_core"} <= names
    image = prepare_wheels.image_packages()
    assert not names & {name.replace("-", "_") for name in image}  # numpy, torch... stay
    compiled = [path.name for path in wheels.glob("*.whl") if "-cp" in path.name]
    assert compiled and all("-cp312-" in name and "x86_64" in name for name in compiled)
    total = sum(path.stat().st_size for path in wheels.glob("*.whl"))
    assert total < prepare_wheels.BUDGET_MIB * 2**20


@pytest.mark.slow
def test_the_dry_run_goes_straight_through_on_the_cpu(wheels: Path) -> None:
    result = run_check("--dry-run", wheels=wheels)
    assert result.returncode == 0, result.stdout + result.stderr
    for module in MODULES:
        assert re.search(rf"^import {re.escape(module)}: ok in \d+ s$", result.stdout, re.M)
    row = r"^\| 64 \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (input|compute) \|$"
    found = re.search(row, result.stdout, re.M)
    assert found and all(int(found.group(column)) > 0 for column in (1, 2, 3, 4)), result.stdout


def test_without_wheels_or_with_an_unknown_option_it_stops_at_once(tmp_path: Path) -> None:
    result = run_check("--dry-run", wheels=tmp_path)
    assert result.returncode == 1 and "no wheels in" in result.stderr
    result = run_check("--gpus", wheels=tmp_path)
    assert result.returncode == 2 and "unknown option '--gpus'" in result.stderr


def _wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA", "\n".join(lines) + "\n")
    return path


def test_conflicts_name_what_is_missing_and_what_the_device_has_instead(tmp_path: Path) -> None:
    image = {"numpy": "2.5.2", "pillow": None}
    only_windows = "windows; sys_platform == 'win32'"
    wheels = [
        _wheel(tmp_path, "good", "1.0", ["numpy>=2", "pillow<1", "other==3.0"]),
        _wheel(tmp_path, "other", "3.0", ["numpy<2", "absent>=1", only_windows]),
    ]
    assert prepare_wheels.conflicts(wheels, image) == [
        "other needs numpy<2, the device would have 2.5.2",
        "other needs absent>=1: neither a wheel nor on the image",
    ]
