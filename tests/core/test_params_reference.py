"""docs/params.md is generated from the schema and params.yaml's comments, and kept current."""

from __future__ import annotations

from pydantic import BaseModel

from depthseg.core.params import Params
from depthseg.core.params_reference import REFERENCE_FILE, allowed, render, yaml_comments
from tests.conftest import REPO_ROOT


def leaf_defaults(model: BaseModel, prefix: str = "") -> dict[str, object]:
    leaves: dict[str, object] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            leaves |= leaf_defaults(value, f"{key}.")
        else:
            leaves[key] = value
    return leaves


def test_docs_params_md_is_what_the_schema_and_params_yaml_give() -> None:
    written = (REPO_ROOT / REFERENCE_FILE).read_text()
    expected = render((REPO_ROOT / "params.yaml").read_text())
    assert written == expected, (
        "docs/params.md is stale: run python -m depthseg.core.params_reference"
    )


def test_every_key_has_one_row_with_its_default() -> None:
    rows = render((REPO_ROOT / "params.yaml").read_text()).splitlines()
    defaults = leaf_defaults(Params())
    assert len([row for row in rows if row.startswith("| `")]) == len(defaults)
    for key, value in defaults.items():
        (row,) = [row for row in rows if row.startswith(f"| `{key}` |")]
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            assert f"| `{value}` |" in row, (key, value, row)


def test_comments_are_keyed_by_their_section_path() -> None:
    text = "a:  # top\n  b: 1  # under a\n  c:\n    d: x   # deep\ne: 2 # back at the top\n"
    assert yaml_comments(text) == {
        "a": "top",
        "a.b": "under a",
        "a.c.d": "deep",
        "e": "back at the top",
    }


def test_allowed_says_choices_bounds_and_null() -> None:
    assert allowed({"enum": ["sgd", "adam"]}) == "`sgd` \\| `adam`"
    assert allowed({"type": "integer", "exclusiveMinimum": 0}) == "int, > 0"
    bounded = {"type": "number", "minimum": 0, "maximum": 1}
    assert allowed({"anyOf": [bounded, {"type": "null"}]}) == "float, >= 0, <= 1 or `null`"
    sizes = {"type": "array", "minItems": 1, "items": {"type": "integer", "multipleOf": 32}}
    assert allowed(sizes) == "list of >= 1 (int, multiple of 32)"
