"""Held-out plants: the fixed stand-ins for reality, never sampled in training.

Each plant is a named set of physical-parameter overrides (the env keeps every other parameter nominal), passed
as ``env.reset(options={"params": plant})``. ``s2r eval --plants heldout`` and the firmware emulator's
``--plant NAME`` both read this one table, so "the robot with weak motors" means the same thing everywhere.
The values sit outside the fixed-DR presets (:mod:`domain_rand.fixed`) on purpose.
"""

from __future__ import annotations

from sim.errors import UserError

_BIPED_WORST = {
    "ground_friction": 0.4,
    "hull_mass_scale": 1.3,
    "motor_strength": 0.75,
    "action_latency": 0.03,
    "encoder_bias": 0.03,
    "lidar_dropout": 0.15,
    "imu_noise": 0.02,
}
_KNOB_WORST = {
    "knob_friction": 0.045,
    "knob_inertia_scale": 1.6,
    "fingertip_friction": 0.5,
    "motor_strength": 0.75,
    "action_latency": 0.03,
    "encoder_bias": 0.03,
}

PLANTS: dict[str, dict[str, dict[str, dict[str, float]]]] = {
    "biped": {
        "heldout": {
            "nominal": {},
            "low_friction": {"ground_friction": 0.3},
            "heavy_hull": {"hull_mass_scale": 1.4},
            "weak_motors": {"motor_strength": 0.6},
            "latency_40ms": {"action_latency": 0.04},
            "lidar_dropout_20": {"lidar_dropout": 0.2},
            "encoder_bias": {"encoder_bias": 0.05},
            "worst_case": _BIPED_WORST,
        },
    },
    "knob": {
        "heldout": {
            "nominal": {},
            "sticky_knob": {"knob_friction": 0.05},
            "heavy_knob": {"knob_inertia_scale": 2.0},
            "slippery_tips": {"fingertip_friction": 0.3},
            "weak_motors": {"motor_strength": 0.6},
            "latency_40ms": {"action_latency": 0.04},
            "encoder_bias": {"encoder_bias": 0.05},
            "worst_case": _KNOB_WORST,
        },
    },
}


def get_plants(robot_id: str, suite: str = "heldout") -> dict[str, dict[str, float]]:
    """The named plants of a suite, ``{plant: {param: value}}`` (``nominal`` first). Copies: safe to mutate.

    ``suite="nominal"`` is just the nominal plant. Unknown robot or suite → ValueError listing the choices.
    """
    if robot_id not in PLANTS:
        raise UserError(f"no plant suites for robot '{robot_id}'; robots with plants: {', '.join(PLANTS)}")
    if suite == "nominal":
        return {"nominal": {}}
    suites = PLANTS[robot_id]
    if suite not in suites:
        raise UserError(
            f"unknown plant suite '{suite}' for {robot_id}; suites: nominal, {', '.join(suites)}"
        )
    return {name: dict(values) for name, values in suites[suite].items()}


def get_plant(robot_id: str, name: str) -> dict[str, float]:
    """One named plant from any suite of a robot (e.g. the emulator's ``--plant weak_motors``)."""
    if robot_id not in PLANTS:
        get_plants(robot_id)  # raises the one-line unknown-robot error
    known = {n: v for suite in PLANTS[robot_id] for n, v in get_plants(robot_id, suite).items()}
    if name not in known:
        raise UserError(f"unknown plant '{name}' for {robot_id}; plants: {', '.join(known)}")
    return known[name]
