"""Fixed domain randomization: named presets (or a JSON file) of parameter ranges, sampled every episode.

The presets are each robot's :attr:`sim.task.Task.dr_presets` (``sim/tasks/<robot>.py``, which cites where their
ranges come from). The held-out plants sit deliberately *outside* them, so an evaluation on the plants measures
generalization, not memorization.

A JSON file has the same shape as a preset: ``{"ground_friction": [0.5, 1.25], "motor_strength": 0.9, ...}``
(a single number fixes the parameter).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from domain_rand.samplers import Ranges, check_ranges, rng_from_state, rng_state, sample_ranges
from sim.errors import UserError
from sim.files import read_json
from sim.params import ParamSpace
from sim.task import get_task

NOMINAL_NAMES = ("none", "nominal")


def preset_names(robot_id: str) -> tuple[str, ...]:
    """Names accepted by ``--dr`` for a robot (besides a JSON path)."""
    return tuple(get_task(robot_id).dr_presets)


def load_ranges(space: ParamSpace, dr: str) -> Ranges:
    """Resolve ``--dr`` (a preset name or a JSON file path) to a validated range table for ``space``."""
    if not (dr.endswith(".json") or os.path.sep in dr):
        presets = get_task(space.robot_id).dr_presets
        if dr in presets:
            return check_ranges(space, presets[dr], f"DR preset '{dr}'")
        raise UserError(
            f"unknown DR preset '{dr}' for {space.robot_id}; use one of {', '.join(presets) or '(none)'} "
            "or a path to a JSON file of {name: [low, high]}"
        )
    table = read_json(dr, "DR file")  # OSError (missing file) is a one-line user error in the CLI
    if not isinstance(table, dict):
        raise UserError(
            f"DR file {dr} must hold a JSON object {{name: [low, high]}}, got {type(table).__name__}"
        )
    return check_ranges(space, table, f"DR file {dr}")


class FixedDRSource:
    """Each episode draws every parameter of a fixed range table (log-uniform for scale factors)."""

    def __init__(self, space: ParamSpace, ranges: Ranges, seed: int = 0) -> None:
        self.space = space
        self.ranges = check_ranges(space, ranges, "fixed DR")
        self.rng = np.random.default_rng(seed)

    def sample(self) -> tuple[dict[str, float], Any]:
        return sample_ranges(self.space, self.ranges, self.rng), None

    def report(self, tag: Any, performance: float) -> None:
        pass  # fixed ranges do not adapt

    def scalars(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "fixed",
            "ranges": {k: list(v) for k, v in self.ranges.items()},
            "rng": rng_state(self.rng),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "fixed":
            raise UserError(f"checkpoint holds a '{state.get('kind')}' parameter source, not fixed DR")
        self.ranges = check_ranges(self.space, state["ranges"], "checkpoint DR ranges")
        self.rng = rng_from_state(state["rng"])
