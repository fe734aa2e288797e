"""Changing one value of a params file in place."""

from __future__ import annotations

from pathlib import Path

import pytest

from depthseg.core.params import ParamsError
from depthseg.core.params_edit import set_param
from depthseg.core.params_file import load_params

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(REPO_PARAMS.read_text())
    return path


def test_one_value_changes_and_every_other_line_stays(params_file: Path) -> None:
    before = params_file.read_text().splitlines()
    set_param(params_file, "train.optimizer.lr", 0.0123)
    set_param(params_file, "train.scheduler.min_lr", 2e-6)
    after = params_file.read_text().splitlines()
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert [new.split("#")[0].strip() for _, new in changed] == ["lr: 0.0123", "min_lr: 2.0e-06"]
    assert changed[1][1].endswith("# plateau")  # the comment is kept
    params = load_params(params_file)
    assert params.train.optimizer.lr == 0.0123 and params.train.scheduler.min_lr == 2e-6


def test_an_unknown_key_or_a_refused_value_leaves_the_file_as_it_was(params_file: Path) -> None:
    before = params_file.read_text()
    with pytest.raises(ParamsError, match=r"no key train\.optimizer\.rate"):
        set_param(params_file, "train.optimizer.rate", 0.1)
    with pytest.raises(ParamsError, match=r"train\.optimizer\.lr"):
        set_param(params_file, "train.optimizer.lr", -1.0)
    assert params_file.read_text() == before
    assert sorted(p.name for p in params_file.parent.iterdir()) == ["params.yaml"]
