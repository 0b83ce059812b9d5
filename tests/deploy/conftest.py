"""Fixtures for the deploy tests: read-only exported bundles (TinyPolicy and make_bundle: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory, make_tiny_bundle: Callable[..., Path]) -> dict[str, Path]:
    """Read-only bundles: three biped policies (a, b, c) and a knob one. Copy before modifying."""
    tmp = tmp_path_factory.mktemp("bundles")
    out = {name: make_tiny_bundle(tmp, seed=seed) for seed, name in enumerate("abc")}
    return {**out, "knob": make_tiny_bundle(tmp, "knob", 2)}
