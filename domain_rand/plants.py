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

# The reality box: moderate ranges standing for an *uncalibrated* real robot — what a team that built the robot
# to the nominal drawings, but measured nothing, should expect. ``s2r stress`` draws every parameter at once
# (log-uniform for scale factors). A policy meant for hardware should succeed on most of these plants.
_ACTUATOR_BOX = {
    "motor_strength": (0.8, 1.1),  # datasheet stall torque vs a real, warm motor and driver
    "joint_damping": (0.03, 0.15),
    "action_latency": (0.002, 0.012),  # host → board → current loop
    "control_jitter": (0.0, 0.002),
    "torque_lag": (0.0005, 0.003),  # current-loop bandwidth 50-300 Hz
    "backlash": (0.0, 0.01),  # up to ~0.6° of free play
    "sensor_delay": (0.0, 0.008),  # board sampling + serial frame
    "supply_sag": (0.0, 0.1),
    "encoder_resolution": (4096.0, 16384.0),  # 12-14 bit encoders
    "continuous_torque_ratio": (0.4, 0.7),
    "encoder_noise": (0.0, 0.003),
    "encoder_bias": (-0.02, 0.02),  # calibration offset, ~1°
}
REALITY_BOX: dict[str, dict[str, tuple[float, float]]] = {
    "biped": {
        "ground_friction": (0.6, 1.2),
        "hull_mass_scale": (0.85, 1.2),
        "leg_mass_scale": (0.85, 1.2),
        "joint_friction": (0.0, 0.1),
        **_ACTUATOR_BOX,
        "imu_noise": (0.0, 0.01),
        "velocity_noise": (0.0, 0.05),
        "lidar_noise": (0.0, 0.01),  # a cheap ToF lidar: ~1 cm
        "lidar_dropout": (0.0, 0.05),
        "lidar_spurious": (0.0, 0.02),
        "terrain_roughness": (0.0, 0.01),  # a lab floor with mats and cables
    },
    "knob": {
        "knob_friction": (0.01, 0.035),
        "knob_damping": (0.005, 0.02),
        "knob_inertia_scale": (0.8, 1.25),
        "fingertip_friction": (0.6, 1.2),
        "finger_mass_scale": (0.85, 1.2),
        "joint_friction": (0.0, 0.04),
        **_ACTUATOR_BOX,
        "knob_encoder_noise": (0.0, 0.005),
    },
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
            # the cliffs that matter on a real robot: small, common imperfections, one at a time
            "latency_10ms": {"action_latency": 0.01},
            "latency_20ms": {"action_latency": 0.02},
            "sensor_delay_20ms": {"sensor_delay": 0.02},  # one control period
            "lidar_noise_1cm": {"lidar_noise": 0.01},
            "rough_2cm": {"terrain_roughness": 0.02},
            "light_legs": {"leg_mass_scale": 0.7},
            "heavy_legs": {"leg_mass_scale": 1.3},
            "strong_motors": {"motor_strength": 1.3},
            "backlash_1deg": {"backlash": 0.0175},
            "torque_lag_5ms": {"torque_lag": 0.005},
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
            "latency_10ms": {"action_latency": 0.01},
            "latency_20ms": {"action_latency": 0.02},
            "sensor_delay_20ms": {"sensor_delay": 0.02},
            "light_fingers": {"finger_mass_scale": 0.7},
            "heavy_fingers": {"finger_mass_scale": 1.3},
            "strong_motors": {"motor_strength": 1.3},
            "backlash_1deg": {"backlash": 0.0175},
            "torque_lag_5ms": {"torque_lag": 0.005},
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
