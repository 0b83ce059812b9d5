"""Motor model shared by every robot: latency, strength, torque–speed curve, damping and friction.

Pure numpy; the env calls :meth:`MotorModel.command` once per control step and :meth:`MotorModel.torque`
once per physics substep with the measured joint speeds, then applies the returned torques.
"""

from __future__ import annotations

import math
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
    * Joint damping and Coulomb friction (smoothed over ±0.05 rad/s) oppose motion.

    :meth:`torque` runs once per physics substep, so it works on plain Python floats: for four motors numpy's
    per-call overhead would outweigh the arithmetic (BENCHMARKS.md, Simulation speed).
    """

    def __init__(self, spec: ActionSpec, substep_s: float) -> None:
        self.spec = spec
        self.substep_s = substep_s
        self.stall_nm = [float(m.torque_limit_nm) for m in spec.motors]
        self.no_load_rad_s = [float(m.no_load_speed_rad_s) for m in spec.motors]
        self.reset(MotorParams())

    def reset(self, params: MotorParams) -> None:
        """Start an episode with zero torque in the pipeline."""
        self.params = params
        n = self.spec.n
        self._delay_substeps = int(round(params.latency_s / self.substep_s))
        self._queue: deque[list[float]] = deque([0.0] * n for _ in range(self._delay_substeps))
        self._pending = [0.0] * n
        self._peak = [params.strength * s for s in self.stall_nm]
        self._limit = [params.torque_limit_scale * s for s in self.stall_nm]
        self._damping, self._friction = params.damping_nms_rad, params.friction_nm
        self.last_applied_nm: list[float] = [0.0] * n

    def command(self, torque_nm: np.ndarray | list[float]) -> None:
        """Latch a new torque command (N·m) for the coming control period, clipped to the firmware limit."""
        self._pending = [min(max(float(t), -lim), lim) for t, lim in zip(torque_nm, self._limit, strict=True)]

    def torque(self, joint_vel_rad_s: list[float] | np.ndarray) -> list[float]:
        """Torque (N·m) per motor to apply during the next physics substep, given joint speeds (rad/s)."""
        queue = self._queue
        queue.append(self._pending)
        active = queue.popleft()
        damping, friction, tanh = self._damping, self._friction, math.tanh
        out = []
        # strict=False: strict zips cost time in this per-substep loop, and a wrong-length speed list already fails
        # when the simulator applies the returned torques
        for cmd, w, peak, w0 in zip(active, joint_vel_rad_s, self._peak, self.no_load_rad_s, strict=False):
            # back-EMF: driving torque falls linearly with speed in the driving direction; braking keeps the peak
            if cmd * w > 0:
                frac = 1.0 - (w if w > 0 else -w) / w0
                env = peak * frac if frac > 0.0 else 0.0
            else:
                env = peak
            tau = env if cmd > env else (-env if cmd < -env else cmd)
            out.append(tau - damping * w - friction * tanh(w * 20.0))  # Coulomb friction smoothed over ±0.05 rad/s
        self.last_applied_nm = out
        return out
