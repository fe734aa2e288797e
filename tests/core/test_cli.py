from __future__ import annotations

import sys
from pathlib import Path

import pytest

from depthseg.core.cli import run_stage, stage_parser
from depthseg.core.params import Params


@pytest.mark.parametrize(
    ("override", "key"), [("train.epochs=0", "train.epochs"), ("train.epochs=[1,", "train.epochs")]
)
def test_stage_reports_bad_params_in_one_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    override: str,
    key: str,
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("{}\n")
    monkeypatch.setattr(sys, "argv", ["stage", "--params", str(path), "-S", override])
    ran: list[Params] = []
    with pytest.raises(SystemExit) as exited:
        run_stage(stage_parser("test stage"), lambda params, args: ran.append(params))
    assert exited.value.code == 2
    assert not ran
    error = capsys.readouterr().err
    assert error.startswith("error: ")
    assert key in error
    assert "Traceback" not in error
