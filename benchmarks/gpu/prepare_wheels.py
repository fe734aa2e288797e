"""Wheels for the GPU check: what it imports that the GPU machines' image lacks, for Python 3.12.

Run here, where the packages are installed: the distributions the check imports (found by
importing its modules) less those the image holds (device_image_packages.txt) are downloaded at
the versions installed here, without their dependencies, as wheels for CPython 3.12 on manylinux
x86-64. Then every wheel's requirements are checked against the wheels and the image's packages:
one missing, or pinned against a version the image has, is a conflict. Nothing is left half done:
the wheels are gathered in a temporary folder that replaces ``--out`` at the end.

    .venv/bin/python benchmarks/gpu/prepare_wheels.py            # -> build/gpu-wheels
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as metadata
import shutil
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent
IMAGE_PACKAGES = HERE / "device_image_packages.txt"
#: What the GPU check imports: the fetch and index stages and the Trainer.
CHECK_MODULES = ("depthseg.stages.fetch", "depthseg.stages.index", "depthseg.engine.loop")
#: The project itself travels as source (PYTHONPATH), not as a wheel.
PROJECT = "depthseg"
PYTHON = "3.12"
#: The device's Python and platform, as the markers of a requirement see them.
ENVIRONMENT = {
    "python_version": PYTHON, "python_full_version": "3.12.3", "sys_platform": "linux",
    "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
    "platform_python_implementation": "CPython", "os_name": "posix", "extra": "",
}  # fmt: skip
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
BUDGET_MIB = 64


def image_packages(path: Path = IMAGE_PACKAGES) -> dict[str, str | None]:
    """Canonical name -> version (None where the list does not say) of the image's packages."""
    packages: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.strip().partition("==")
            packages[canonicalize_name(name)] = version or None
    return packages


def imported_distributions(modules: tuple[str, ...] = CHECK_MODULES) -> dict[str, str]:
    """Canonical name -> installed version of every distribution that importing ``modules``
    loads here."""
    before = set(sys.modules)
    for module in modules:
        importlib.import_module(module)
    providers = metadata.packages_distributions()
    loaded = {name.split(".")[0] for name in set(sys.modules) - before}
    names = {dist for module in loaded for dist in providers.get(module, [])}
    return {canonicalize_name(name): metadata.version(name) for name in names}


def wanted(imported: dict[str, str], image: dict[str, str | None]) -> dict[str, str]:
    return {
        name: version
        for name, version in sorted(imported.items())
        if name not in image and name != PROJECT
    }


def download(packages: dict[str, str], folder: Path) -> None:
    platforms = [option for platform in PLATFORMS for option in ("--platform", platform)]
    pins = [f"{name}=={version}" for name, version in packages.items()]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         "--only-binary=:all:", "--python-version", PYTHON, *platforms, "--dest", str(folder),
         *pins],
        check=True,
    )  # fmt: skip


def wheel_requirements(wheel: Path) -> tuple[str, list[Requirement]]:
    """The wheel's canonical name and the requirements that apply on the device."""
    with zipfile.ZipFile(wheel) as archive:
        member = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        fields = Parser().parsestr(archive.read(member).decode())
    requirements = [Requirement(text) for text in fields.get_all("Requires-Dist") or []]
    applying = [r for r in requirements if r.marker is None or r.marker.evaluate(ENVIRONMENT)]
    return canonicalize_name(fields["Name"]), applying


def conflicts(wheels: list[Path], image: dict[str, str | None]) -> list[str]:
    """What the wheels require that neither they nor the image give, or a version the image's
    package is not; a package the image has at a version the list does not say is trusted."""
    given = dict(image)
    requirements = {}
    for wheel in wheels:
        name, needs = wheel_requirements(wheel)
        given[name] = wheel.name.split("-")[1]
        requirements[name] = needs
    problems = []
    for name, needs in requirements.items():
        for requirement in needs:
            dependency = canonicalize_name(requirement.name)
            if dependency not in given:
                problems.append(f"{name} needs {requirement}: neither a wheel nor on the image")
            elif (version := given[dependency]) and not requirement.specifier.contains(
                version, prereleases=True
            ):
                problems.append(f"{name} needs {requirement}, the device would have {version}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/gpu-wheels"))
    args = parser.parse_args()
    image = image_packages()
    packages = wanted(imported_distributions(), image)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out.parent) as scratch:
        folder = Path(scratch) / "wheels"
        download(packages, folder)
        wheels = sorted(folder.glob("*.whl"))
        mebibytes = sum(wheel.stat().st_size for wheel in wheels) / 2**20
        for wheel in wheels:
            print(f"{wheel.name}: {wheel.stat().st_size / 2**20:.2f} MiB")
        print(f"{len(wheels)} wheels, {mebibytes:.1f} MiB (budget {BUDGET_MIB} MiB)")
        problems = conflicts(wheels, image)
        for problem in problems:
            print(f"conflict: {problem}")
        if mebibytes > BUDGET_MIB or problems or len(wheels) != len(packages):
            sys.exit(f"the wheels cannot go to the device as they are: see above ({args.out} kept)")
        shutil.rmtree(args.out, ignore_errors=True)
        folder.rename(args.out)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
