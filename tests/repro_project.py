"""A tiny copy of this repository after `dvc repro`: what the slow tests run real DVC in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = [
    "src", "dvc.yaml", "params.yaml", "MLproject", ".dvc/config", ".dvcignore", ".gitignore"
]  # fmt: skip
TINY = {
    "data": {"synthetic": {"backgrounds": 6, "foregrounds": 3, "placements": 4, "image_size": 64}},
    "model": {"width": 0.125},
    "train": {
        "epochs": 2,
        "image_sizes": [32, 64],
        "batch_size": 8,
        "workers": 0,
        "scenes_per_epoch": 64,
    },
    "evaluate": {"prediction_images": 3},
    # A password where none belongs: the pipeline runs, and it appears in no MLflow record.
    "tune": {"storage": "postgresql://optuna:S3cretPW@127.0.0.1:1/optuna"},
}
SECRET = "S3cretPW"


def _merge(base: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if isinstance(value, dict):
            _merge(base.setdefault(key, {}), value)
        else:
            base[key] = value
    return base


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def copy_project(destination: Path, changes: dict) -> None:
    for name in PROJECT_FILES:
        source = REPO / name
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    params = yaml.safe_load((destination / "params.yaml").read_text())
    (destination / "params.yaml").write_text(yaml.safe_dump(_merge(params, changes)))


def project_env(project: Path) -> dict[str, str]:
    """This interpreter's tools first on PATH, MLflow in the project, a git identity."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'tracking.db'}",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
    }  # fmt: skip


def make_repro_project(project: Path) -> dict[str, str]:
    """Copy the repository with tiny params into ``project``, commit, `dvc repro`, commit the
    results as a user would; return the environment it ran in."""
    copy_project(project, TINY)
    env = project_env(project)
    run(["git", "init", "-q"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "project"], project, env)
    run(["dvc", "repro"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "dvc repro"], project, env)
    return env


def clone_project(project: Path, destination: Path) -> Path:
    """A full copy (git history, DVC cache, outputs) to change without touching ``project``."""
    shutil.copytree(project, destination, symlinks=True)
    return destination
