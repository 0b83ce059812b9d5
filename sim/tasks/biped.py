"""The biped: everything s2r knows about it, in one record (:data:`TASK`; see :mod:`sim.task`).

Its spec (observation layout, motors, sensors, 50 Hz control) is pure numpy, shared by the simulator
(``sim/biped.py``), the exporter, the controller runtime and the firmware emulator: change a layout or a limit
here and it flows everywhere (env spaces, ONNX scaling, manifest, firmware clamp). The rest of the record is data
for the stages above: env ids, the metric keys of ``info["metrics"]``, held-out plants, reality box, DR presets,
ADR defaults, stress sweeps and learner presets.

DR presets follow the legged-robot sim-to-real literature (Tan et al. 2018, Hwangbo et al. 2019, Rudin et al.
2021, Kumar et al. 2021 "RMA"): friction 0.5–1.25, link masses ±20 %, motor strength 0.8–1.2, 0–40 ms latency,
sensor noise, lidar dropout; ``default`` is the milder everyday set. The held-out plants sit deliberately
*outside* these ranges, so an evaluation on them measures generalization, not memorization.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.spec import ActionSpec, MotorSpec, ObsField, RobotSpec, SensorFrame, SensorLayout
from sim.task import ACTUATOR_BOX, MOTOR_SWEEPS, EnvVariant, Task, register_task

CONTROL_HZ = 50.0  # as BipedalWalker
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


# Privileged state (``info["privileged"]``, float32): what the simulator knows and the robot's sensors do not —
# the critic of an asymmetric actor-critic reads it (``privileged_critic``), the actor and the export never do.
# The vector is these state fields, then ``sim.params.param_fields(param_space)``: the episode's physical
# parameters in table order (``env.unwrapped.privileged_fields`` is the whole layout; `s2r envs` prints it).
BIPED_PRIVILEGED_FIELDS: tuple[ObsField, ...] = (
    ObsField("true_hull_height", "m", 0.0, 1.0, "hull height above the highest ground within ±0.3 m", 0.01),
    ObsField("true_hull_pitch", "rad", -1.0, 1.0, "hull pitch without IMU noise or delay, + = nose down", 0.01),
    ObsField("true_hull_pitch_rate", "rad/s", -5.0, 5.0, "hull pitch rate without noise or delay", 0.05),
    ObsField("true_vx", "m/s", -2.0, 2.0, "forward hull velocity, exact", 0.02),
    ObsField("true_vz", "m/s", -2.0, 2.0, "vertical hull velocity, exact", 0.02),
    *(ObsField(f"true_{m.name}_angle", "rad", m.joint_low_rad, m.joint_high_rad,
               f"{m.name} joint angle without encoder bias, noise or delay", 0.01) for m in BIPED_MOTORS),
    *(ObsField(f"true_{m.name}_speed", "rad/s", -14.0, 14.0, f"{m.name} joint speed, exact", 0.1)
      for m in BIPED_MOTORS),
    *(ObsField(f"contact_{link}", "bool", 0.0, 1.0, f"{link} touches the ground (0/1)", 0.25)
      for link in ("hull", "thigh_left", "shank_left", "thigh_right", "shank_right")),
    *(ObsField(f"applied_torque_{m.name}", "N·m", -m.torque_limit_nm, m.torque_limit_nm,
               f"joint torque of {m.name} in the last physics substep (after latency, strength, friction)", 0.3)
      for m in BIPED_MOTORS),
    ObsField("push_force", "N", -400.0, 400.0, "horizontal push on the hull in progress (+ = forward)", 4.0),
)  # fmt: skip


def biped_obs_from_readings(pitch_rad: float, pitch_rate_rad_s: float, vel_mps: Sequence[float] | np.ndarray,
                            q_rad: Sequence[float] | np.ndarray, dq_rad_s: Sequence[float] | np.ndarray,
                            contacts: Sequence[float], lidar_m: Sequence[float] | np.ndarray) -> np.ndarray:
    """The biped's observation from its raw sensor readings (SI units, floats or float arrays; the layout of
    ``BIPED_OBS_FIELDS``): what :data:`BIPED_SPEC`'s ``build_obs`` computes from a :class:`SensorFrame`, and the
    simulator from the same readings before (or without) packing them into a frame."""
    # one float32 array from one list of Python floats: numpy's per-call overhead, not the arithmetic, is what
    # this costs every control step. Each value rounds to float32 once, as an element write would (a frame's
    # float32 arrays round to the same float32 again); a lidar range is rounded to float32 first and then divided
    # in double, which rounds to the float32 quotient exactly (the float32 division of the same operands), and the
    # clip commutes with that rounding (it is monotonic).
    r = _LIDAR_RANGE_F32
    lidar = [x / r for x in np.asarray(lidar_m, dtype=np.float32).tolist()]
    return np.array(
        [pitch_rad, pitch_rate_rad_s, vel_mps[0], vel_mps[1],
         q_rad[0], dq_rad_s[0], q_rad[1], dq_rad_s[1], contacts[0], q_rad[2], dq_rad_s[2], q_rad[3], dq_rad_s[3],
         contacts[1], *[0.0 if x < 0.0 else (1.0 if x > 1.0 else x) for x in lidar]],
        dtype=np.float32,
    )  # fmt: skip


_LIDAR_RANGE_F32 = float(np.float32(BIPED_LIDAR_RANGE_M))  # the range as the board's float32 holds it


def _biped_obs(spec: RobotSpec, f: SensorFrame, prev_action: np.ndarray) -> np.ndarray:
    del spec, prev_action  # the biped observation does not include the previous action (BipedalWalker layout)
    asarray = np.asarray  # the frame's fields are arrays of any float dtype (or sequences)
    return biped_obs_from_readings(f.imu_pitch_rad, f.imu_pitch_rate_rad_s, asarray(f.vel_mps).tolist(),
                                   asarray(f.joint_pos_rad).tolist(), asarray(f.joint_vel_rad_s).tolist(),
                                   asarray(f.contacts).tolist(), f.lidar_m)  # fmt: skip


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



_WORST = {
    "ground_friction": 0.4,
    "hull_mass_scale": 1.3,
    "motor_strength": 0.75,
    "action_latency": 0.03,
    "encoder_bias": 0.03,
    "lidar_dropout": 0.15,
    "imu_noise": 0.02,
}


def _variant(name: str, gym_id: str, terrain: str) -> EnvVariant:
    presets = {"td3": f"{name}_td3.yaml", "ppo": f"{name}_ppo.yaml"}
    if name == "biped":
        presets["lstm-td3"] = "biped_lstm-td3.yaml"
        presets["rppo"] = "biped_rppo.yaml"
    return EnvVariant(name, gym_id, "sim.biped:BipedEnv", 1600, {"terrain": terrain}, presets)


TASK = register_task(
    Task(
        spec=BIPED_SPEC,
        params="sim.biped:BIPED_PARAMS",
        reward_presets="sim.biped:BIPED_REWARD_PRESETS",  # the reward weights live with the env's reward (sim/biped.py)
        envs=(
            _variant("biped", "s2r/Biped-v0", "flat"),
            _variant("biped-rough", "s2r/BipedRough-v0", "rough"),
            _variant("biped-hardcore", "s2r/BipedHardcore-v0", "obstacles"),
        ),
        success_text="walked >= 15 m of the course without a fall (episode ends there)",
        metrics=("success", "fell", "distance_m"),
        performance="distance_m",
        failure="fell",
        plants={
            "heldout": {
                "nominal": {},
                "low_friction": {"ground_friction": 0.3},
                "heavy_hull": {"hull_mass_scale": 1.4},
                "weak_motors": {"motor_strength": 0.6},
                "latency_40ms": {"action_latency": 0.04},
                "lidar_dropout_20": {"lidar_dropout": 0.2},
                "encoder_bias": {"encoder_bias": 0.05},
                "worst_case": _WORST,
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
        reality_box={
            "ground_friction": (0.6, 1.2),
            "hull_mass_scale": (0.85, 1.2),
            "leg_mass_scale": (0.85, 1.2),
            "joint_friction": (0.0, 0.1),
            **ACTUATOR_BOX,
            "imu_noise": (0.0, 0.01),
            "velocity_noise": (0.0, 0.05),
            "lidar_noise": (0.0, 0.01),  # a cheap ToF lidar: ~1 cm
            "lidar_dropout": (0.0, 0.05),
            "lidar_spurious": (0.0, 0.02),
            "terrain_roughness": (0.0, 0.01),  # a lab floor with mats and cables
        },
        dr_presets={
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
        # ADR (domain_rand.adr): a bound widens while the policy succeeds there in >= 80 % of its episodes (the
        # same bar as `s2r stress`'s cliff) and narrows at <= 50 %; deltas ~1/20 of the usual DR spans
        adr={
            "params": {
                "ground_friction": {"delta": 0.05},
                "hull_mass_scale": {"delta": 0.05},
                "leg_mass_scale": {"delta": 0.05},
                "motor_strength": {"delta": 0.05},
                "action_latency": {"delta": 0.004},
                "encoder_noise": {"delta": 0.002},
                "encoder_bias": {"delta": 0.005},
                "imu_noise": {"delta": 0.004},
                "lidar_dropout": {"delta": 0.02},
                "lidar_noise": {"delta": 0.002},
                "sensor_delay": {"delta": 0.004},
                "torque_lag": {"delta": 0.001},
                "backlash": {"delta": 0.002},
                "terrain_roughness": {"delta": 0.002},
            },
            "t_low": 0.5,
            "t_high": 0.8,
            "buffer_size": 10,
            "performance": "success",
        },
        stress_sweeps=(
            ("ground_friction", (0.7, 0.5, 0.3, 0.2, 0.1)),
            ("ground_friction", (1.5, 2.0)),
            ("hull_mass_scale", (0.8, 0.65, 0.5)),
            ("hull_mass_scale", (1.2, 1.4, 1.7, 2.0)),
            ("leg_mass_scale", (0.85, 0.7, 0.5)),
            ("leg_mass_scale", (1.15, 1.3, 1.6, 2.0)),
            ("joint_damping", (0.1, 0.2, 0.5, 1.0)),
            ("joint_friction", (0.05, 0.1, 0.3, 1.0)),
            *MOTOR_SWEEPS,
            ("imu_noise", (0.005, 0.01, 0.02, 0.05)),
            ("velocity_noise", (0.02, 0.05, 0.1, 0.2)),
            ("lidar_noise", (0.002, 0.005, 0.01, 0.02, 0.05)),
            ("lidar_dropout", (0.05, 0.1, 0.2, 0.4, 0.8)),
            ("lidar_spurious", (0.01, 0.03, 0.1, 0.3)),
            ("terrain_roughness", (0.005, 0.01, 0.02, 0.04)),
            ("push_force", (25.0, 50.0, 100.0, 200.0)),
        ),
        walking_mass_kg="sim.biped:WALKING_MASS_KG",
    )
)
