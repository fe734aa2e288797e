from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from depthseg.core.params import Params, ParamsError, TrainParams, flatten, parse_params
from depthseg.core.params_file import apply_override, load_params, read_params_file

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def _problem_lines(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ParamsError) as caught:
        parse_params(raw, source="params.yaml")
    return str(caught.value).splitlines()


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
