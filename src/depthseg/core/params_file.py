"""params.yaml read from disk, with ``KEY=VALUE`` overrides applied, into the validated schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from depthseg.core.params import PARAMS_FILE, Params, ParamsError, parse_params


def read_params_file(path: Path = PARAMS_FILE) -> dict[str, Any]:
    if not path.is_file():
        raise ParamsError(f"{path}: not found: run from the repository root, where params.yaml is")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return raw


def apply_override(raw: dict[str, Any], dotted_key: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested mapping, creating sections on the way."""
    *sections, leaf = dotted_key.split(".")
    node = raw
    for section in sections:
        node = node.setdefault(section, {})
        if not isinstance(node, dict):
            raise ParamsError(f"override {dotted_key}: '{section}' is not a section")
    node[leaf] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with a YAML value, as ``dvc exp run -S`` takes it."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ParamsError(f"override {text!r}: expected KEY=VALUE, e.g. train.epochs=3")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ParamsError(f"override {text!r}: the value is not valid YAML ({problem})") from None
    return key.strip(), parsed


def load_params(path: Path = PARAMS_FILE, overrides: list[str] | None = None) -> Params:
    raw = read_params_file(path)
    for text in overrides or []:
        apply_override(raw, *parse_override(text))
    return parse_params(raw, str(path))
