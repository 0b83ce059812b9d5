"""Motor model shared by every robot: latency, strength, torque–speed curve, damping and friction.

Pure numpy; the env calls :meth:`MotorModel.command` once per control step and :meth:`MotorModel.torque`
once per physics substep with the measured joint speeds, then applies the returned torques.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from sim.spec import ActionSpec


@dataclass(frozen=True)
class MotorParams:
    """Physical motor parameters in force for one episode."""

    strength: float = 1.0  # scale on stall torque
    torque_limit_scale: float = 1.0  # scale on the firmware clamp
    damping_nms_rad: float = 0.05  # viscous damping, N·m·s/rad
    friction_nm: float = 0.02  # Coulomb friction, N·m
    latency_s: float = 0.0  # command → torque delay, s


class MotorModel:
    """Four (or n) DC motors with a linear torque–speed curve behind a command latency.

    * The commanded torque is clipped to the firmware limit (``torque_limit_nm * torque_limit_scale``).
    * It takes effect ``latency_s`` later (resolution: one physics substep).
    * The motor can deliver at most ``strength * stall * (1 - |w|/w0)`` when driving in the direction of motion
      (back-EMF) and the full stall torque when braking: the classic linear DC-motor envelope.
    * Joint damping and Coulomb friction oppose motion.
    """

    def __init__(self, spec: ActionSpec, substep_s: float) -> None:
        self.spec = spec
        self.substep_s = substep_s
        self.stall_nm = np.array([m.torque_limit_nm for m in spec.motors], dtype=np.float64)
        self.no_load_rad_s = np.array([m.no_load_speed_rad_s for m in spec.motors], dtype=np.float64)
        self.params = MotorParams()
        self._queue: deque[np.ndarray] = deque()
        self._delay_substeps = 0
        self._active = np.zeros(spec.n)
        self._pending = np.zeros(spec.n)
        self.last_applied_nm = np.zeros(spec.n)

    def reset(self, params: MotorParams) -> None:
        """Start an episode with zero torque in the pipeline."""
        self.params = params
        self._delay_substeps = int(round(params.latency_s / self.substep_s))
        self._queue = deque(np.zeros(self.spec.n) for _ in range(self._delay_substeps))
        self._active = np.zeros(self.spec.n)
        self._pending = np.zeros(self.spec.n)
        self.last_applied_nm = np.zeros(self.spec.n)

    def command(self, torque_nm: np.ndarray) -> None:
        """Latch a new torque command (N·m) for the coming control period."""
        limit = self.stall_nm * self.params.torque_limit_scale
        self._pending = np.clip(np.asarray(torque_nm, dtype=np.float64), -limit, limit)

    def torque(self, joint_vel_rad_s: np.ndarray) -> np.ndarray:
        """Torque (N·m) to apply during the next physics substep, given joint speeds (rad/s)."""
        self._queue.append(self._pending)
        self._active = self._queue.popleft()
        w = np.asarray(joint_vel_rad_s, dtype=np.float64)
        peak = self.params.strength * self.stall_nm
        # back-EMF: driving torque falls linearly with speed in the driving direction; braking keeps the peak
        driving = np.sign(self._active) * np.sign(w) > 0
        envelope = np.where(driving, peak * np.clip(1.0 - np.abs(w) / self.no_load_rad_s, 0.0, 1.0), peak)
        tau = np.clip(self._active, -envelope, envelope)
        tau = tau - self.params.damping_nms_rad * w - self.params.friction_nm * np.tanh(w / 0.05)
        self.last_applied_nm = tau
        return tau
