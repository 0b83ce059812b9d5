"""The README's layer diagram is the import-linter contract in pyproject.toml, drawn (lint-imports checks the
contract itself in .ci/run)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def _contract_layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (stages,) = [c for c in config["contracts"] if c["id"] == "stages"]
    return [sorted(name.strip() for name in layer.split("|")) for layer in stages["layers"]]


def _readme_layers() -> list[list[str]]:
    """Rows of the README's first diagram, split at its ─── rules; the folders named in each row."""
    diagram = (ROOT / "README.md").read_text().split("```\n", 2)[1]
    rows = re.split(r"\n *─+ *\n", diagram)
    return [sorted(set(re.findall(r"(?:^|│) *([a-z_0-9]+)/", row, flags=re.M))) for row in rows]


def test_readme_diagram_draws_the_layer_contract():
    assert _readme_layers() == _contract_layers()
