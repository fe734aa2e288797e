"""The package's rules, read from its imports: layers, purity, module size, honest DVC deps."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = SRC / "depthseg"
STAGE_SCRIPTS = {path.stem for path in SRC.glob("*.py")}
MAX_LINES = 500

#: Which of the project's subpackages each subpackage may import (itself always).
ALLOWED = {
    "core": set(),
    "synthetic": {"data.layout"},
    "data": {"core", "synthetic"},
    "models": set(),
    "objectives": set(),
    "engine": {"core", "data", "models", "objectives"},
    "serving": {"core", "data", "models", "objectives", "engine"},
    "tracking": {"core", "data", "models", "objectives", "engine", "serving"},
    "experiments": {"core"},
    "tuning": {"core", "data", "models", "objectives", "engine", "tracking", "experiments"},
    "stages": {"core", "data", "models", "objectives", "engine", "serving", "tracking"},
}
TRACKING_LIBRARIES = {"mlflow", "dvc", "optuna"}


def library_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def imported_names(path: Path) -> frozenset[str]:
    """Every module name ``path`` imports: ``from a.b import c`` gives ``a.b`` and ``a.b.c``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; use absolute ones"
            assert node.module is not None
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(names)


def project_imports(path: Path) -> set[str]:
    """The ``depthseg`` submodules and subpackages ``path`` imports, without the prefix."""
    return {
        name.removeprefix("depthseg.")
        for name in imported_names(path)
        if name.startswith("depthseg.") and source_file(name) is not None
    }


def source_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def third_party_roots(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_names(path)}


@pytest.mark.parametrize("path", library_modules(), ids=module_name)
def test_each_subpackage_imports_only_the_layers_below_it(path: Path) -> None:
    parts = path.relative_to(PACKAGE).parts
    if len(parts) == 1:  # depthseg/__init__.py
        assert not project_imports(path)
        return
    own = parts[0]
    allowed = ALLOWED[own]
    for name in project_imports(path):
        if name.split(".")[0] == own:
            continue
        # A package on the way to an allowed module (``data`` for ``data.layout``) runs too.
        reachable = (
            ok
            for ok in allowed
            if name == ok or f"{name}.".startswith(f"{ok}.") or ok.startswith(f"{name}.")
        )
        assert any(reachable), (
            f"{module_name(path)} imports depthseg.{name}; {own} may use only {sorted(allowed)}"
        )


@pytest.mark.parametrize("path", library_modules(), ids=module_name)
def test_no_library_module_imports_a_stage_script(path: Path) -> None:
    assert not third_party_roots(path) & STAGE_SCRIPTS


@pytest.mark.parametrize("path", library_modules(), ids=module_name)
def test_only_tracking_and_the_mlflow_model_use_mlflow_and_nothing_uses_dvc(path: Path) -> None:
    roots = third_party_roots(path)
    assert "dvc" not in roots
    mlflow_modules = (
        "depthseg.tracking",
        "depthseg.serving.pyfunc",
        "depthseg.serving.model_code",
        "depthseg.serving.model_source",
    )
    if not module_name(path).startswith(mlflow_modules):
        assert "mlflow" not in roots


@pytest.mark.parametrize("folder", ["models", "objectives"])
def test_the_model_losses_and_metrics_depend_on_torch_alone(folder: str) -> None:
    for path in sorted((PACKAGE / folder).glob("*.py")):
        assert not third_party_roots(path) & TRACKING_LIBRARIES
        outside = {
            "depthseg",
            "torch",
            "math",
            "dataclasses",
            "__future__",
            "typing",
            "collections",
        }
        assert third_party_roots(path) <= outside, f"{path.name}: {third_party_roots(path)}"


def test_the_params_schema_imports_only_the_error_type() -> None:
    assert project_imports(PACKAGE / "core" / "params.py") == {"core.errors"}


@pytest.mark.parametrize("path", library_modules(), ids=module_name)
def test_every_module_is_under_500_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) < MAX_LINES


def reached_files(script: Path) -> set[Path]:
    """The script and every project file its imports reach, package __init__ files included."""
    seen: set[Path] = set()
    pending = [script]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_names(path):
            if not name.startswith("depthseg"):
                continue
            parts = name.split(".")
            for end in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                found = source_file(".".join(parts[:end]))
                if found is not None:
                    pending.append(found)
    return seen


def dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(dvc_stages()))
def test_every_file_a_stage_runs_is_one_of_its_dvc_deps(stage: str) -> None:
    spec = dvc_stages()[stage]
    script = REPO / spec["cmd"].split()[1]
    deps = [REPO / dep for dep in spec["deps"]]
    for dep in deps:
        assert dep.exists() or not dep.is_relative_to(SRC), f"{stage}: dep {dep} does not exist"
    uncovered = sorted(
        str(path.relative_to(REPO))
        for path in reached_files(script)
        if not any(path == dep or path.is_relative_to(dep) for dep in deps)
    )
    assert not uncovered, f"dvc.yaml stage {stage} runs these files but does not depend on them"


@pytest.mark.parametrize("module", ["depthseg.serving.pyfunc", "depthseg.stages.evaluate"])
def test_what_serves_or_evaluates_imports_no_augmentation(module: str) -> None:
    # Every model server, predict and the register and evaluate stages import these before their
    # first answer; albumentations alone took 0.7-0.9 s of it.
    imported = subprocess.run(
        [sys.executable, "-c", f"import sys, {module}; print(*sys.modules)"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert "torch" in imported and module in imported
    assert not {"albumentations", "depthseg.data.augmentation"} & set(imported)
