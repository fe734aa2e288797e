"""The docs state what the code does: tables of defaults are checked against their source."""

from __future__ import annotations

import re
from pathlib import Path

from depthseg.core.params import LimitsParams
from depthseg.core.params_file import load_params

REPO = Path(__file__).resolve().parents[1]


def test_the_limits_table_gives_every_limit_with_its_default() -> None:
    text = (REPO / "docs/security.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([\d.]+) \|", text, re.MULTILINE))
    defaults = LimitsParams().model_dump()
    assert rows.keys() == defaults.keys()
    assert {key: float(value) for key, value in rows.items()} == defaults
    assert load_params(REPO / "params.yaml").limits == LimitsParams()


def _layout_modules() -> set[str]:
    """The library modules docs/pipeline.md's layout names: ``sub/name.py``. A subpackage's line
    starts ``  sub/``; each of its modules starts a line indented to the name column (15 spaces);
    deeper lines continue a description."""
    text = (REPO / "docs/pipeline.md").read_text().split("## Layout", 1)[1]
    block = text.split("```", 2)[1]
    listed: set[str] = set()
    subpackage = ""
    for line in block.splitlines():
        header = re.match(r"^  (\w+)/ +(.*)$", line)
        if header:
            subpackage, names = header.groups()
        elif subpackage and re.match(r"^ {15}\S", line):
            names = line.strip()
        else:
            continue
        for name in names.split():
            if not re.fullmatch(r"\w+\.py", name):
                break
            listed.add(f"{subpackage}/{name}")
    return listed


def test_the_layout_names_every_library_module() -> None:
    package = REPO / "src/depthseg"
    modules = {
        path.relative_to(package).as_posix()
        for path in package.glob("*/*.py")
        if path.name != "__init__.py"
    }
    listed = _layout_modules()
    assert not modules - listed, f"docs/pipeline.md's layout lacks {sorted(modules - listed)}"
    assert not listed - modules, f"docs/pipeline.md's layout names {sorted(listed - modules)}"
