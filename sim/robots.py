"""The robots s2r knows: observation layouts, motors and torque limits, sensor layouts, control rates.

Pure numpy: imported by the simulator, the exporter, the controller runtime and the firmware emulator alike.
Change a layout or a limit here and it flows everywhere (env spaces, ONNX scaling, manifest, firmware clamp).
"""

from __future__ import annotations

import numpy as np

from sim.errors import UserError
from sim.spec import ActionSpec, MotorSpec, ObsField, RobotSpec, SensorFrame, SensorLayout

CONTROL_HZ = 50.0  # both robots: 50 Hz control, as BipedalWalker

# ----------------------------------------------------------------------------------------------- biped
BIPED_LIDAR_ANGLES_RAD = tuple(float(a) for a in np.linspace(0.0, 1.5, 10))  # below horizontal, forward
BIPED_LIDAR_RANGE_M = 2.5
BIPED_LIDAR_RESOLUTION_M = 0.05  # range change the policy should resolve: 5x a cheap lidar's 1 cm noise

BIPED_MOTORS = (
    MotorSpec("hip_left", torque_limit_nm=30.0, no_load_speed_rad_s=14.0, joint_low_rad=-1.2, joint_high_rad=1.6),
    MotorSpec("knee_left", torque_limit_nm=30.0, no_load_speed_rad_s=14.0, joint_low_rad=-2.4, joint_high_rad=0.0),
    MotorSpec("hip_right", torque_limit_nm=30.0, no_load_speed_rad_s=14.0, joint_low_rad=-1.2, joint_high_rad=1.6),
    MotorSpec("knee_right", torque_limit_nm=30.0, no_load_speed_rad_s=14.0, joint_low_rad=-2.4, joint_high_rad=0.0),
)


def _leg_fields(side: str) -> tuple[ObsField, ...]:
    return (
        ObsField(f"hip_{side}_angle", "rad", -1.2, 1.6, f"{side} hip angle, thigh vs hull normal, + = forward", 0.01),
        ObsField(f"hip_{side}_speed", "rad/s", -14.0, 14.0, f"{side} hip angular speed", 0.1),
        ObsField(f"knee_{side}_angle", "rad", -2.4, 0.0, f"{side} knee angle, 0 = straight, - = flexed", 0.01),
        ObsField(f"knee_{side}_speed", "rad/s", -14.0, 14.0, f"{side} knee angular speed", 0.1),
        ObsField(f"contact_{side}", "bool", 0.0, 1.0, f"{side} foot touches the ground (0/1)", 0.25),
    )


BIPED_OBS_FIELDS: tuple[ObsField, ...] = (
    ObsField("hull_pitch", "rad", -1.0, 1.0, "hull pitch from the IMU, + = nose down (leaning forward)", 0.01),
    ObsField("hull_pitch_rate", "rad/s", -5.0, 5.0, "hull pitch rate from the IMU gyro", 0.05),
    ObsField("vx", "m/s", -2.0, 2.0, "forward velocity of the hull, from the board's state estimator", 0.02),
    ObsField("vy", "m/s", -2.0, 2.0, "vertical velocity of the hull (BipedalWalker's vy), state estimator", 0.02),
    *_leg_fields("left"),
    *_leg_fields("right"),
    *(
        ObsField(f"lidar_{i}", "fraction", 0.0, 1.0, f"range at {a:.3f} rad below horizontal / {BIPED_LIDAR_RANGE_M} m",
                 BIPED_LIDAR_RESOLUTION_M / BIPED_LIDAR_RANGE_M)
        for i, a in enumerate(BIPED_LIDAR_ANGLES_RAD)
    ),
)


def _biped_obs(spec: RobotSpec, f: SensorFrame, prev_action: np.ndarray) -> np.ndarray:
    # one float32 array from one list of Python floats: numpy's per-call overhead, not the arithmetic, is what
    # this costs every control step. Each value rounds to float32 once, as an element write would; a lidar range
    # is rounded to float32 first and then divided in double, which rounds to the float32 quotient exactly (the
    # float32 division of the same operands), and the clip commutes with that rounding (it is monotonic).
    del prev_action  # the biped observation does not include it (BipedalWalker layout)
    asarray = np.asarray  # the frame's fields are arrays of any float dtype (or sequences)
    q, dq = asarray(f.joint_pos_rad).tolist(), asarray(f.joint_vel_rad_s).tolist()
    c_left, c_right = asarray(f.contacts).tolist()
    r = float(np.float32(spec.sensors.lidar_max_range_m))
    lidar = [x / r for x in np.asarray(f.lidar_m, dtype=np.float32).tolist()]
    return np.array(
        [f.imu_pitch_rad, f.imu_pitch_rate_rad_s, *asarray(f.vel_mps).tolist(),
         q[0], dq[0], q[1], dq[1], c_left, q[2], dq[2], q[3], dq[3], c_right,
         *[0.0 if x < 0.0 else (1.0 if x > 1.0 else x) for x in lidar]],
        dtype=np.float32,
    )  # fmt: skip


BIPED_SPEC = RobotSpec(
    robot_id="biped",
    obs_fields=BIPED_OBS_FIELDS,
    action=ActionSpec(BIPED_MOTORS),
    sensors=SensorLayout(
        n_joints=4,
        n_contacts=2,
        lidar_angles_rad=BIPED_LIDAR_ANGLES_RAD,
        lidar_max_range_m=BIPED_LIDAR_RANGE_M,
        sensor_rate_hz=CONTROL_HZ,
    ),
    control_hz=CONTROL_HZ,
    obs_builder=_biped_obs,
)

# ------------------------------------------------------------------------------------------------ knob
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

ROBOTS: dict[str, RobotSpec] = {"biped": BIPED_SPEC, "knob": KNOB_SPEC}


def get_robot(robot_id: str) -> RobotSpec:
    """Look up a robot spec by id (``biped`` or ``knob``)."""
    try:
        return ROBOTS[robot_id]
    except KeyError:
        raise UserError(f"unknown robot '{robot_id}'; known robots: {', '.join(ROBOTS)}") from None
