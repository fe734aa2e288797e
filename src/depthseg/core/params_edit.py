"""Change one value of params.yaml in place, keeping its comments, order and layout."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from depthseg.core.files import replaced_atomically
from depthseg.core.params import ParamsError, parse_params
from depthseg.core.params_file import read_params_file

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.]+):(?P<rest>.*)$")
_COMMENT = re.compile(r"\s+#.*$")


def set_param(path: Path, dotted_key: str, value: Any) -> None:
    """Set ``dotted_key`` (e.g. ``train.optimizer.lr``) to ``value`` in the YAML file ``path``.

    The key must already be there with a scalar value; the result is validated against the
    schema before it replaces the file.
    """
    target = dotted_key.split(".")
    lines = path.read_text().splitlines(keepends=True)
    stack: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        match = _KEY_LINE.match(line.rstrip("\n"))
        if match is None:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if [key for _, key in stack] != target:
            continue
        comment = _COMMENT.search(match["rest"])
        rendered = yaml.safe_dump(value, default_flow_style=True).splitlines()[0]
        kept = comment.group(0) if comment else ""
        lines[number] = f"{match['indent']}{match['key']}: {rendered}{kept}\n"
        break
    else:
        raise ParamsError(f"{path}: no key {dotted_key} to set; add it to the file first")
    with replaced_atomically(path) as partial:
        partial.write_text("".join(lines))
        # A value the schema refuses never replaces the file.
        parse_params(read_params_file(partial), str(path))
