from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from depthseg.core.params import ParamsError
from depthseg.core.params_file import apply_override, load_params, parse_override, read_params_file


def _write_params(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.epochs=3", ("train.epochs", 3)),
        (" train.seed = 7 ", ("train.seed", 7)),
        ("train.optimizer.lr=0.5", ("train.optimizer.lr", 0.5)),
        ("train.image_sizes=[64, 96]", ("train.image_sizes", [64, 96])),
        ("train.augment.geometric=true", ("train.augment.geometric", True)),
        ("data.path=null", ("data.path", None)),
        ("data.path=/data/modest=v2.zip", ("data.path", "/data/modest=v2.zip")),
    ],
)
def test_parse_override(text: str, expected: tuple[str, Any]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["train.epochs", "=3", "train.image_sizes=[64,", 'a="open'])
def test_bad_override_is_a_params_error_naming_it(text: str) -> None:
    with pytest.raises(ParamsError) as caught:
        parse_override(text)
    assert repr(text) in str(caught.value)


def test_apply_override_creates_sections_and_keeps_siblings() -> None:
    raw: dict[str, Any] = {"train": {"epochs": 2, "optimizer": {"name": "adam"}}}
    apply_override(raw, "train.optimizer.lr", 0.1)
    apply_override(raw, "evaluate.split", "val")
    assert raw == {
        "train": {"epochs": 2, "optimizer": {"name": "adam", "lr": 0.1}},
        "evaluate": {"split": "val"},
    }


def test_apply_override_below_a_value_is_refused() -> None:
    with pytest.raises(ParamsError, match="'epochs' is not a section"):
        apply_override({"train": {"epochs": 2}}, "train.epochs.max", 3)


def test_load_params_applies_overrides_in_order(tmp_path: Path) -> None:
    path = _write_params(tmp_path / "params.yaml", {"train": {"epochs": 2, "batch_size": 4}})
    overrides = ["train.epochs=5", "train.image_sizes=[32, 64]", "train.epochs=7"]
    # PyYAML reads 1e-3 as a string; the schema must still take it as the number.
    params = load_params(path, [*overrides, "train.optimizer.lr=1e-3"])
    assert params.train.optimizer.lr == pytest.approx(0.001)
    assert params.train.epochs == 7
    assert params.train.batch_size == 4
    assert params.train.image_sizes == [32, 64]


def test_load_params_reports_an_invalid_override_with_the_file(tmp_path: Path) -> None:
    path = _write_params(tmp_path / "exp.yaml", {"train": {"epochs": 2}})
    with pytest.raises(ParamsError) as caught:
        load_params(path, ["train.epochs=0", "train.epoch=3"])
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert "train.epochs" in lines[0]
    assert "unknown key 'train.epoch'" in lines[1]


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "not found"), ("train: [1,\n", "not valid YAML"), ("- 1\n- 2\n", "mapping")],
)
def test_unreadable_params_file(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "params.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ParamsError, match=expected):
        read_params_file(path)
