"""The docs state what the code does: tables of defaults are checked against their source."""

from __future__ import annotations

import re
from pathlib import Path

from depthseg.core.params import LimitsParams, load_params

REPO = Path(__file__).resolve().parents[1]


def test_the_limits_table_gives_every_limit_with_its_default() -> None:
    text = (REPO / "docs/security.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([\d.]+) \|", text, re.MULTILINE))
    defaults = LimitsParams().model_dump()
    assert rows.keys() == defaults.keys()
    assert {key: float(value) for key, value in rows.items()} == defaults
    assert load_params(REPO / "params.yaml").limits == LimitsParams()
