"""The knob hand: everything s2r knows about it, in one record (:data:`TASK`; see :mod:`sim.task`).

Spec (pure numpy, shared by ``sim/knob.py``, the exporter, the controller and the firmware emulator), env id,
metric keys, held-out plants, reality box, DR presets (``dexterous``: OpenAI 2019 "Solving Rubik's Cube" style),
ADR defaults, stress sweeps, the scripted re-grasping gait (``sim.knob_gait``) and the learner presets.
"""

from __future__ import annotations

import numpy as np

from sim.spec import ActionSpec, MotorSpec, ObsField, RobotSpec, SensorFrame, SensorLayout
from sim.task import ACTUATOR_BOX, MOTOR_SWEEPS, EnvVariant, Task, register_task

CONTROL_HZ = 50.0
KNOB_MOTORS = (
    MotorSpec("finger0_base", torque_limit_nm=0.6, no_load_speed_rad_s=12.0, joint_low_rad=-1.6, joint_high_rad=1.6,
              rotor_inertia_kgm2=2e-3),
    MotorSpec("finger0_distal", torque_limit_nm=0.6, no_load_speed_rad_s=12.0, joint_low_rad=-1.6, joint_high_rad=1.6,
              rotor_inertia_kgm2=2e-3),
    MotorSpec("finger1_base", torque_limit_nm=0.6, no_load_speed_rad_s=12.0, joint_low_rad=-1.6, joint_high_rad=1.6,
              rotor_inertia_kgm2=2e-3),
    MotorSpec("finger1_distal", torque_limit_nm=0.6, no_load_speed_rad_s=12.0, joint_low_rad=-1.6, joint_high_rad=1.6,
              rotor_inertia_kgm2=2e-3),
)

KNOB_OBS_FIELDS: tuple[ObsField, ...] = (
    *(ObsField(f"{m.name}_angle", "rad", m.joint_low_rad, m.joint_high_rad, f"{m.name} joint angle", 0.01)
      for m in KNOB_MOTORS),
    *(ObsField(f"{m.name}_speed", "rad/s", -12.0, 12.0, f"{m.name} joint speed", 0.1) for m in KNOB_MOTORS),
    ObsField("knob_sin", "1", -1.0, 1.0, "sin of the knob angle", 0.01),
    ObsField("knob_cos", "1", -1.0, 1.0, "cos of the knob angle", 0.01),
    ObsField("knob_speed", "rad/s", -10.0, 10.0, "knob angular speed", 0.1),
    ObsField("target_sin", "1", -1.0, 1.0, "sin of the target knob angle", 0.01),
    ObsField("target_cos", "1", -1.0, 1.0, "cos of the target knob angle", 0.01),
    ObsField("angle_error", "rad", -np.pi, np.pi, "target − knob angle, wrapped to [−π, π)", 0.01),
    ObsField("contact_finger0", "bool", 0.0, 1.0, "fingertip 0 touches the knob (0/1)", 0.25),
    ObsField("contact_finger1", "bool", 0.0, 1.0, "fingertip 1 touches the knob (0/1)", 0.25),
    *(ObsField(f"prev_action_{m.name}", "1", -1.0, 1.0, f"previous normalized action of {m.name}", 0.05)
      for m in KNOB_MOTORS),
)

# privileged state of the knob (see BIPED_PRIVILEGED_FIELDS in sim/tasks/biped.py; the episode's parameters follow)
KNOB_PRIVILEGED_FIELDS: tuple[ObsField, ...] = (
    *(ObsField(f"true_{m.name}_angle", "rad", m.joint_low_rad, m.joint_high_rad,
               f"{m.name} joint angle without encoder bias, noise or delay", 0.01) for m in KNOB_MOTORS),
    *(ObsField(f"true_{m.name}_speed", "rad/s", -12.0, 12.0, f"{m.name} joint speed, exact", 0.1)
      for m in KNOB_MOTORS),
    ObsField("true_knob_sin", "1", -1.0, 1.0, "sin of the knob angle, exact", 0.01),
    ObsField("true_knob_cos", "1", -1.0, 1.0, "cos of the knob angle, exact", 0.01),
    ObsField("true_knob_speed", "rad/s", -10.0, 10.0, "knob angular speed, exact", 0.1),
    ObsField("true_angle_error", "rad", -np.pi, np.pi, "target − knob angle, exact, wrapped to [−π, π)", 0.01),
    ObsField("true_contact_finger0", "bool", 0.0, 1.0, "fingertip 0 touches the knob, undelayed (0/1)", 0.25),
    ObsField("true_contact_finger1", "bool", 0.0, 1.0, "fingertip 1 touches the knob, undelayed (0/1)", 0.25),
    *(ObsField(f"applied_torque_{m.name}", "N·m", -m.torque_limit_nm, m.torque_limit_nm,
               f"joint torque of {m.name} in the last physics substep (after latency, strength, friction)", 0.006)
      for m in KNOB_MOTORS),
    ObsField("hold_fraction", "1", 0.0, 1.0, "steps held within the success tolerance / steps required", 0.1),
)  # fmt: skip

KNOB_AUX = ("knob_angle", "knob_speed", "goal_angle")


def wrap_angle(x: np.ndarray | float) -> np.ndarray:
    """Wrap an angle in rad to [−π, π)."""
    return (np.asarray(x) + np.pi) % (2.0 * np.pi) - np.pi


def _knob_obs(spec: RobotSpec, f: SensorFrame, prev_action: np.ndarray) -> np.ndarray:
    del spec
    knob, knob_speed, goal = float(f.aux[0]), float(f.aux[1]), float(f.aux[2])
    return np.array(
        [
            *f.joint_pos_rad, *f.joint_vel_rad_s,
            np.sin(knob), np.cos(knob), knob_speed,
            np.sin(goal), np.cos(goal), wrap_angle(goal - knob),
            f.contacts[0], f.contacts[1],
            *prev_action,
        ],
        dtype=np.float32,
    )  # fmt: skip


KNOB_SPEC = RobotSpec(
    robot_id="knob",
    obs_fields=KNOB_OBS_FIELDS,
    action=ActionSpec(KNOB_MOTORS),
    sensors=SensorLayout(
        n_joints=4,
        n_contacts=2,
        lidar_angles_rad=(),
        lidar_max_range_m=1.0,
        aux_names=KNOB_AUX,
        aux_units=("rad", "rad/s", "rad"),
        sensor_rate_hz=CONTROL_HZ,
    ),
    control_hz=CONTROL_HZ,
    obs_builder=_knob_obs,
)


_WORST = {
    "knob_friction": 0.045,
    "knob_inertia_scale": 1.6,
    "fingertip_friction": 0.5,
    "motor_strength": 0.75,
    "action_latency": 0.03,
    "encoder_bias": 0.03,
}

TASK = register_task(
    Task(
        spec=KNOB_SPEC,
        params="sim.knob:KNOB_PARAMS",
        reward_presets="sim.knob:KNOB_REWARD_PRESETS",  # the reward weights live with the env's reward (sim/knob.py)
        envs=(
            EnvVariant("knob", "s2r/Knob-v0", "sim.knob:KnobEnv", 400, {},
                       {"td3": "knob_td3.yaml", "ppo": "knob_ppo.yaml", "lstm-td3": "knob_lstm-td3.yaml",
                        "rppo": "knob_rppo.yaml"}),
        ),  # fmt: skip
        success_text="turned the knob to its target (|error| < 0.1 rad held 10 steps) within 400 steps",
        metrics=("success", "consecutive_successes"),
        performance="success",
        failure=None,  # the hand does not fall
        plants={
            "heldout": {
                "nominal": {},
                "sticky_knob": {"knob_friction": 0.05},
                "heavy_knob": {"knob_inertia_scale": 2.0},
                "slippery_tips": {"fingertip_friction": 0.3},
                "weak_motors": {"motor_strength": 0.6},
                "latency_40ms": {"action_latency": 0.04},
                "encoder_bias": {"encoder_bias": 0.05},
                "worst_case": _WORST,
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
        reality_box={
            "knob_friction": (0.01, 0.035),
            "knob_damping": (0.005, 0.02),
            "knob_inertia_scale": (0.8, 1.25),
            "fingertip_friction": (0.6, 1.2),
            "finger_mass_scale": (0.85, 1.2),
            "joint_friction": (0.0, 0.04),
            **ACTUATOR_BOX,
            "knob_encoder_noise": (0.0, 0.005),
        },
        dr_presets={
            "default": {
                "knob_friction": (0.015, 0.03),
                "knob_damping": (0.007, 0.014),
                "knob_inertia_scale": (0.8, 1.25),
                "fingertip_friction": (0.7, 1.2),
                "motor_strength": (0.9, 1.1),
                "action_latency": (0.0, 0.02),
                "encoder_noise": (0.0, 0.005),
            },
            "dexterous": {
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
        adr={
            "params": {
                "knob_friction": {"delta": 0.002},
                "knob_inertia_scale": {"delta": 0.05},
                "fingertip_friction": {"delta": 0.05},
                "motor_strength": {"delta": 0.05},
                "action_latency": {"delta": 0.004},
                "encoder_noise": {"delta": 0.002},
                "encoder_bias": {"delta": 0.005},
                "sensor_delay": {"delta": 0.004},
                "torque_lag": {"delta": 0.001},
                "backlash": {"delta": 0.002},
            },
            "t_low": 0.5,
            "t_high": 0.8,
            "buffer_size": 10,
            "performance": "success",
        },
        stress_sweeps=(
            ("knob_friction", (0.03, 0.045, 0.07, 0.1, 0.2)),
            ("knob_friction", (0.01, 0.0)),
            ("knob_damping", (0.02, 0.03)),
            ("knob_inertia_scale", (0.7, 0.5, 0.3)),
            ("knob_inertia_scale", (1.5, 2.0, 3.0)),
            ("fingertip_friction", (0.7, 0.5, 0.3, 0.1)),
            ("fingertip_friction", (1.5, 2.0)),
            ("finger_mass_scale", (0.7, 0.5, 0.3)),
            ("finger_mass_scale", (1.5, 2.0, 3.0)),
            ("joint_damping", (0.1, 0.2, 0.5)),
            ("joint_friction", (0.04, 0.07, 0.1)),
            *MOTOR_SWEEPS,
            ("knob_encoder_noise", (0.005, 0.01, 0.02, 0.05)),
        ),
        # the re-grasping gait PPO imitates (knob_ppo.yaml), the same gait turning faster (knob_fast_ppo.yaml), and
        # that one reading the knob a control period ahead
        experts={"knob_gait": "sim.knob_gait:gait_action", "knob_gait_fast": "sim.knob_gait:fast_gait_action",
                 "knob_gait_predictive": "sim.knob_gait:predictive_gait_action"},
    )
)
