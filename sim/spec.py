"""Robot-agnostic specs: observation fields, motors and action scaling, sensor layout, raw sensor frames.

This module is pure numpy (no pybullet) so the controller runtime on the robot, the ONNX exporter and the
firmware emulator can all import it. It is the one place where these facts live:

* the observation layout of each robot (order, names, units, ranges) and the pure function that builds the
  observation vector from raw sensor readings — the simulator and the controller runtime call the *same*
  function, so an exported policy sees identical inputs in simulation and on the board;
* the action scaling: policies act in [-1, 1]; :class:`ActionSpec` maps that to torques in N·m per motor and
  clamps. The exporter folds it into the ONNX graph, the firmware checks the limits again.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ObsField:
    """One entry of an observation vector."""

    name: str
    unit: str
    low: float  # typical lower bound (documentation; the observation space itself is unbounded)
    high: float
    doc: str
    # smallest change of this field (in its unit) that a policy should resolve: sensor noise/quantization scale.
    # The observation normalizer's std is floored at it and export refuses a larger input gain (1/resolution),
    # so no input can be blown up by a field that hardly varied in training.
    resolution: float


@dataclass(frozen=True)
class MotorSpec:
    """One torque-controlled motor (and the joint it drives)."""

    name: str
    torque_limit_nm: float  # stall torque at motor strength 1.0, N·m
    no_load_speed_rad_s: float  # speed where the linear torque–speed curve reaches zero torque, rad/s
    joint_low_rad: float = -np.pi
    joint_high_rad: float = np.pi
    rotor_inertia_kgm2: float = 0.02  # rotor inertia reflected through the gear, kg·m² (backlash model)


@dataclass(frozen=True)
class ActionSpec:
    """Maps normalized policy actions in [-1, 1] to motor torques in N·m, and clamps torques to limits."""

    motors: tuple[MotorSpec, ...]

    @property
    def n(self) -> int:
        return len(self.motors)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.motors)

    @property
    def limits_nm(self) -> np.ndarray:
        """Per-motor torque limits in N·m, shape (n,), float32."""
        return np.array([m.torque_limit_nm for m in self.motors], dtype=np.float32)

    @functools.cached_property
    def _limits_list(self) -> list[float]:
        return [float(x) for x in self.limits_nm]  # the float32 limits, so both paths give identical torques

    def torque_list(self, action: np.ndarray | list[float]) -> list[float]:
        """Normalized action in [-1, 1] → torque in N·m as plain floats (the simulator's hot path).

        Non-finite input raises ValueError; out-of-range values are clipped to [-1, 1].
        """
        limits = self._limits_list
        if type(action) is np.ndarray and action.dtype.char in "fd" and action.shape == (len(limits),):
            a = action.tolist()  # float32/float64 → Python floats, exactly as through a float64 array
        else:
            arr = np.asarray(action, dtype=np.float64)
            if arr.shape != (len(limits),):
                raise ValueError(f"action has shape {arr.shape}, expected ({self.n},): one value per motor {self.names}")
            a = arr.tolist()
        if not all(map(math.isfinite, a)):
            raise ValueError(f"action contains NaN or inf: {a}; policies must output finite values")
        return [(-1.0 if x < -1.0 else (1.0 if x > 1.0 else x)) * lim for x, lim in zip(a, limits, strict=False)]

    def to_torque_nm(self, action: np.ndarray) -> np.ndarray:
        """Normalized action in [-1, 1] → torque in N·m, float32. Non-finite input raises; out-of-range is clipped."""
        return np.asarray(self.torque_list(action), dtype=np.float32)

    def to_normalized(self, torque_nm: np.ndarray) -> np.ndarray:
        """Torque in N·m → normalized action in [-1, 1] (clipped)."""
        return np.clip(np.asarray(torque_nm, dtype=np.float32) / self.limits_nm, -1.0, 1.0)

    def clamp_torque_nm(self, torque_nm: np.ndarray) -> np.ndarray:
        """Safety clamp: non-finite entries become 0 N·m, the rest are clipped to ±limit. Never raises."""
        t = np.asarray(torque_nm, dtype=np.float32).reshape(-1)
        if t.shape != (self.n,):
            return np.zeros(self.n, dtype=np.float32)
        t = np.where(np.isfinite(t), t, 0.0).astype(np.float32)
        return np.clip(t, -self.limits_nm, self.limits_nm)


@dataclass(frozen=True)
class SensorLayout:
    """What the motor board measures, as announced in its IDENT message (see docs/protocol.md).

    Every robot has ``n_joints`` encoders (position rad, speed rad/s), an IMU (pitch rad, pitch rate rad/s),
    a planar velocity estimate (m/s), ``n_contacts`` contact switches, ``len(lidar_angles_rad)`` lidar rays
    (metres, angles measured downward from the horizontal) and robot-specific auxiliary channels (e.g. the knob
    encoder and its goal) named in ``aux_names`` with units ``aux_units``.
    """

    n_joints: int = 4
    n_contacts: int = 2
    lidar_angles_rad: tuple[float, ...] = ()
    lidar_max_range_m: float = 1.0
    aux_names: tuple[str, ...] = ()
    aux_units: tuple[str, ...] = ()
    sensor_rate_hz: float = 50.0


@dataclass
class SensorFrame:
    """Raw sensor readings of one control period, in SI units, as the board reports them."""

    joint_pos_rad: np.ndarray  # (n_joints,)
    joint_vel_rad_s: np.ndarray  # (n_joints,)
    imu_pitch_rad: float = 0.0
    imu_pitch_rate_rad_s: float = 0.0
    vel_mps: np.ndarray = field(default_factory=lambda: np.zeros(2, dtype=np.float32))  # (vx, vz) m/s
    contacts: np.ndarray = field(default_factory=lambda: np.zeros(2, dtype=np.float32))  # 0/1 per contact
    lidar_m: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))  # (n_rays,) metres
    aux: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))  # (n_aux,) see aux_names


ObsBuilder = Callable[["RobotSpec", SensorFrame, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RobotSpec:
    """Everything the deploy side needs to know about a robot: layouts, limits and control rate."""

    robot_id: str
    obs_fields: tuple[ObsField, ...]
    action: ActionSpec
    sensors: SensorLayout
    control_hz: float
    obs_builder: ObsBuilder

    @property
    def obs_dim(self) -> int:
        return len(self.obs_fields)

    @property
    def obs_resolution(self) -> np.ndarray:
        """Per-field resolution (the normalizer's std floor), float64 ``(obs_dim,)``."""
        return np.array([f.resolution for f in self.obs_fields], dtype=np.float64)

    @property
    def control_period_s(self) -> float:
        return 1.0 / self.control_hz

    def build_obs(self, frame: SensorFrame, prev_action: np.ndarray | None = None) -> np.ndarray:
        """Raw sensor frame (+ previous normalized action) → observation vector, float32, ``(obs_dim,)``."""
        prev = self._no_action if prev_action is None else np.asarray(prev_action, dtype=np.float32)
        obs = self.obs_builder(self, frame, prev)
        if obs.shape != self._obs_shape:  # a bug in a builder, not a user error
            raise AssertionError(f"{self.robot_id} obs builder produced {obs.shape}, expected ({self.obs_dim},)")
        return obs

    @functools.cached_property
    def _no_action(self) -> np.ndarray:
        """The previous action before the first one: zeros, read-only (shared by every call)."""
        zeros = np.zeros(self.action.n, dtype=np.float32)
        zeros.flags.writeable = False
        return zeros

    @functools.cached_property
    def _obs_shape(self) -> tuple[int]:
        return (self.obs_dim,)

    def check_obs(self, obs: np.ndarray) -> np.ndarray:
        """Validate a user-supplied observation: right shape, finite. Returns it as float32."""
        o = np.asarray(obs, dtype=np.float32)
        if o.shape[-1:] != (self.obs_dim,):
            raise ValueError(
                f"observation for {self.robot_id} has shape {o.shape}, expected (..., {self.obs_dim}) "
                f"in the order {[f.name for f in self.obs_fields][:4]}...; see `s2r envs`"
            )
        if not np.all(np.isfinite(o)):
            raise ValueError(f"observation for {self.robot_id} contains NaN or inf")
        return o
