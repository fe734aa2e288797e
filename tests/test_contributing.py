"""What a contributor runs before pushing is what CI runs."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_pre_commit_runs_the_ruff_checks_of_ci() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    entries = {hook["entry"] for hook in hooks}
    assert entries == {".venv/bin/ruff check", ".venv/bin/ruff format --check"}
    ci = (REPO / ".ci" / "run").read_text()
    for entry in entries:
        assert f"{entry} ." in ci, f"CI does not run `{entry}`"
