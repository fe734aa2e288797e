from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from depthseg.core.cli import run_stage, stage_parser
from depthseg.core.params import (
    Params,
    ParamsError,
    TrainParams,
    apply_override,
    flatten,
    load_params,
    parse_override,
    parse_params,
    read_params_file,
)

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def _problem_lines(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ParamsError) as caught:
        parse_params(raw, source="params.yaml")
    return str(caught.value).splitlines()


def _write_params(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def test_defaults_are_valid() -> None:
    params = parse_params({})
    assert params == Params()
    assert params.data.source == "synthetic"
    assert params.index.split.train + params.index.split.val + params.index.split.test == 1


def test_repository_params_file_is_valid() -> None:
    if not REPO_PARAMS.is_file():
        pytest.skip("no params.yaml in the repository root")
    assert isinstance(load_params(REPO_PARAMS), Params)


def test_the_schema_and_params_yaml_hold_the_same_defaults() -> None:
    """params.yaml is what users edit and DVC tracks; the schema's defaults are what code and
    tests get from ``parse_params({})``: each key must be in both, with one value."""
    written = flatten(read_params_file(REPO_PARAMS))
    declared = flatten(Params())
    in_file = flatten(load_params(REPO_PARAMS))
    # The search space's entries are free-form (log and choices may be left out).
    missing = sorted(k for k in declared.keys() - written.keys() if not k.startswith("tune.space."))
    assert not missing, f"params.yaml lacks these keys of the schema: {missing}"
    differing = {k: (in_file[k], v) for k, v in declared.items() if in_file.get(k, v) != v}
    assert not differing, f"params.yaml value vs schema default: {differing}"
    assert in_file == declared


@pytest.mark.parametrize(
    ("raw", "key", "allowed"),
    [
        pytest.param({"train": {"epoch": 3}}, "train.epoch", "epochs", id="unknown-key"),
        pytest.param({"bogus": {}}, "bogus", "train", id="unknown-section"),
        pytest.param(
            {"data": {"synthetic": {"seeds": 1}}}, "data.synthetic.seeds", "seed", id="nested"
        ),
        pytest.param({"train": {"epochs": "many"}}, "train.epochs", "valid integer", id="type"),
        pytest.param({"train": {"epochs": 2.5}}, "train.epochs", "integer", id="fractional"),
        pytest.param({"train": {"epochs": 0}}, "train.epochs", "greater than 0", id="range"),
        pytest.param(
            {"train": {"augment": {"shift": 0.5}}},
            "train.augment.shift",
            "less than or equal to 0.3",
            id="range-nested",
        ),
        pytest.param(
            {"train": {"image_sizes": [64, 100]}},
            "train.image_sizes.1",
            "multiple of 32",
            id="list-item",
        ),
        pytest.param({"data": {"source": "ftp"}}, "data.source", "'kaggle'", id="literal"),
        pytest.param(
            {"train": {"optimizer": {"name": "lion"}}},
            "train.optimizer.name",
            "'adamw'",
            id="literal-nested",
        ),
        pytest.param(
            {"index": {"split": {"train": 0.5, "val": 0.1, "test": 0.1}}},
            "index.split",
            "add up to 1",
            id="fractions",
        ),
        pytest.param(
            {"index": {"split": {"train": 0.0, "val": 0.5, "test": 0.5}}},
            "index.split.train",
            "greater than 0",
            id="no-train",
        ),
        pytest.param({"data": {"source": "local"}}, "data.path", "folder or .zip", id="local"),
    ],
)
def test_invalid_value_names_key_and_what_is_allowed(
    raw: dict[str, Any], key: str, allowed: str
) -> None:
    (line,) = _problem_lines(raw)
    assert line.startswith("params.yaml: ")
    assert key in line
    assert allowed in line


def test_unknown_key_lists_the_keys_of_its_section() -> None:
    (line,) = _problem_lines({"train": {"optimizer": {"nme": "sgd"}}})
    listed = line.split("allowed here:")[1]
    assert {key.strip(" )") for key in listed.split(",")} == {
        "name",
        "lr",
        "momentum",
        "weight_decay",
    }


def test_one_line_per_problem() -> None:
    raw = {"train": {"epochs": 0, "batch_size": -1}, "data": {"source": "ftp"}, "extra": 1}
    lines = _problem_lines(raw)
    assert len(lines) == 4
    for key in ("train.epochs", "train.batch_size", "data.source", "extra"):
        assert sum(key in line for line in lines) == 1, key


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


def test_flatten_nested_mapping() -> None:
    nested = {"a": {"b": 1, "c": {"d": [2, 3]}}, "e": None}
    assert flatten(nested) == {"a.b": 1, "a.c.d": [2, 3], "e": None}


def test_flatten_params_round_trips_through_overrides() -> None:
    # Search-space keys hold dots themselves, so flattening them cannot be undone: leave them out.
    raw_params = {"train": {"epochs": 3, "image_sizes": [32, 64]}, "tune": {"space": {}}}
    params = parse_params(raw_params)
    flat = flatten(params)
    assert flat["train.epochs"] == 3
    assert flat["train.image_sizes"] == [32, 64]
    assert flat["data.synthetic.backgrounds"] == params.data.synthetic.backgrounds
    assert all(not isinstance(value, dict) for value in flat.values())
    raw: dict[str, Any] = {}
    for key, value in flat.items():
        apply_override(raw, key, value)
    apply_override(raw, "tune.space", {})  # an empty mapping flattens to no key at all
    assert parse_params(raw) == params


@pytest.mark.parametrize(("epoch", "size"), [(1, 32), (2, 64), (3, 96), (9, 96)])
def test_progressive_image_size(epoch: int, size: int) -> None:
    assert TrainParams(image_sizes=[32, 64, 96]).image_size(epoch) == size


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
    path = _write_params(tmp_path / "params.yaml", {})
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


def test_a_mask_only_model_is_refused_params_that_ask_for_depth() -> None:
    (message,) = _problem_lines({"model": {"name": "masknet"}})  # one line naming every key
    for asked in ("loss.depth.rmse is 2.0", "registry.score is iou_minus_rmse"):
        assert asked in message
    assert "loss.depth.ssim" in message and "set" in message  # and saying what to do
    (preset,) = _problem_lines({"model": {"name": "masknet"}, "loss": {"preset": "ssim_dice"}})
    assert "loss.preset is ssim_dice" in preset
    mask_only = parse_params(
        {
            "model": {"name": "masknet"},
            "loss": {"depth": {"rmse": 0}, "mask": {"ssim": 1.0}},
            "registry": {"score": "mask_iou"},
        }
    )
    assert not mask_only.model.predicts_depth and Params().model.predicts_depth
