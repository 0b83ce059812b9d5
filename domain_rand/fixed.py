"""Fixed domain randomization: named presets (or a JSON file) of parameter ranges, sampled every episode.

Presets follow the legged-robot sim-to-real literature (Tan et al. 2018, Hwangbo et al. 2019, Rudin et al. 2021,
Kumar et al. 2021 "RMA"): friction 0.5–1.25, link masses ±20 %, motor strength 0.8–1.2, 0–40 ms latency, sensor
noise, lidar dropout. ``default`` is the milder everyday set. The held-out plants in :mod:`domain_rand.plants`
sit deliberately *outside* these ranges, so an evaluation on them measures generalization, not memorization.

A JSON file has the same shape as a preset: ``{"ground_friction": [0.5, 1.25], "motor_strength": 0.9, ...}``
(a single number fixes the parameter).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from domain_rand.samplers import Ranges, check_ranges, rng_from_state, rng_state, sample_ranges
from sim.errors import UserError
from sim.params import ParamSpace

PRESETS: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "biped": {
        "default": {
            "ground_friction": (0.7, 1.1),
            "hull_mass_scale": (0.9, 1.1),
            "leg_mass_scale": (0.9, 1.1),
            "motor_strength": (0.9, 1.1),
            "action_latency": (0.0, 0.02),
            "encoder_noise": (0.0, 0.005),
            "imu_noise": (0.0, 0.01),
            "lidar_dropout": (0.0, 0.05),
        },
        "legged": {
            "ground_friction": (0.5, 1.25),
            "hull_mass_scale": (0.8, 1.2),
            "leg_mass_scale": (0.8, 1.2),
            "motor_strength": (0.8, 1.2),
            "joint_damping": (0.02, 0.2),
            "joint_friction": (0.0, 0.1),
            "action_latency": (0.0, 0.04),
            "control_jitter": (0.0, 0.002),
            "encoder_noise": (0.0, 0.01),
            "encoder_bias": (-0.02, 0.02),
            "imu_noise": (0.0, 0.02),
            "velocity_noise": (0.0, 0.05),
            "lidar_noise": (0.0, 0.02),
            "lidar_dropout": (0.0, 0.1),
        },
    },
    "knob": {
        "default": {
            "knob_friction": (0.015, 0.03),
            "knob_damping": (0.007, 0.014),
            "knob_inertia_scale": (0.8, 1.25),
            "fingertip_friction": (0.7, 1.2),
            "motor_strength": (0.9, 1.1),
            "action_latency": (0.0, 0.02),
            "encoder_noise": (0.0, 0.005),
        },
        "dexterous": {  # OpenAI 2019 "Solving Rubik's Cube" style: friction, masses, actuator and noise
            "knob_friction": (0.01, 0.04),
            "knob_damping": (0.005, 0.02),
            "knob_inertia_scale": (0.67, 1.5),
            "fingertip_friction": (0.5, 1.25),
            "finger_mass_scale": (0.8, 1.2),
            "motor_strength": (0.8, 1.2),
            "joint_damping": (0.025, 0.1),
            "action_latency": (0.0, 0.04),
            "encoder_noise": (0.0, 0.01),
            "encoder_bias": (-0.02, 0.02),
            "knob_encoder_noise": (0.0, 0.02),
        },
    },
}
NOMINAL_NAMES = ("none", "nominal")


def preset_names(robot_id: str) -> tuple[str, ...]:
    """Names accepted by ``--dr`` for a robot (besides a JSON path)."""
    return tuple(PRESETS.get(robot_id, {}))


def load_ranges(space: ParamSpace, dr: str) -> Ranges:
    """Resolve ``--dr`` (a preset name or a JSON file path) to a validated range table for ``space``."""
    presets = PRESETS.get(space.robot_id, {})
    if dr in presets:
        return check_ranges(space, presets[dr], f"DR preset '{dr}'")
    if not (dr.endswith(".json") or os.path.sep in dr):
        raise UserError(
            f"unknown DR preset '{dr}' for {space.robot_id}; use one of {', '.join(presets) or '(none)'} "
            "or a path to a JSON file of {name: [low, high]}"
        )
    with open(dr, encoding="utf-8") as f:  # OSError (missing file) is a one-line user error in the CLI
        try:
            table = json.load(f)
        except json.JSONDecodeError as exc:
            raise UserError(f"DR file {dr} is not valid JSON: {exc}") from None
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
