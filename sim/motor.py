"""Motor model shared by every robot: latency, strength, torque–speed curve, damping and friction, and the
actuator effects of :mod:`sim.actuator` (torque lag, backlash, supply sag, I²t heating and derating).

Pure Python/numpy and engine-independent; the env calls :meth:`MotorModel.command` once per control step and
:meth:`MotorModel.torque` once per physics substep with the measured joint speeds, then applies the returned
torques. With every actuator effect at its nominal value the substep path is the ideal model, operation for
operation (episodes stay bit-identical to those before the effects existed).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.actuator import Backlash, Thermal, lag_gain, supply_fraction
from sim.spec import ActionSpec


@dataclass(frozen=True)
class MotorParams:
    """Physical motor parameters in force for one episode."""

    strength: float = 1.0  # scale on stall torque
    torque_limit_scale: float = 1.0  # scale on the firmware clamp
    damping_nms_rad: float = 0.05  # viscous damping, N·m·s/rad
    friction_nm: float = 0.02  # Coulomb friction, N·m
    latency_s: float = 0.0  # command → torque delay, s
    torque_lag_s: float = 0.0  # first-order lag time constant of the produced torque, s (0 = none)
    backlash_rad: float = 0.0  # total gear free play, rad (0 = none)
    supply_sag: float = 0.0  # fractional bus-voltage drop at stall current on every motor (0 = stiff supply)
    continuous_torque_ratio: float = 1.0  # continuous rating / stall torque (1 = never derated)
    thermal_time_constant_s: float = 60.0  # winding thermal time constant, s
    enable_ramp_s: float = 0.0  # the controller scales the commands from 0 to full over this long after reset, s


class MotorModel:
    """Four (or n) DC motors with a linear torque–speed curve behind a command latency.

    * With ``enable_ramp_s`` > 0 the command of control step ``k`` of the episode is first clipped to the motor's
      rated limit and scaled by ``min(1, k · period / enable_ramp_s)``, as the controller's ramp after ENABLE
      does on the robot (``deploy.safety.safe_command``).
    * The commanded torque is clipped to the firmware limit (``torque_limit_nm * torque_limit_scale``), lowered
      to the continuous rating while the I²t model says a motor is too hot.
    * It takes effect ``latency_s`` later (resolution: one physics substep), through a first-order lag.
    * The motor can deliver at most ``v * strength * stall * (1 - |w|/(v * w0))`` when driving in the direction of
      motion (back-EMF) and ``v * strength * stall`` when braking: the classic linear DC-motor envelope, with
      ``v`` the bus voltage fraction (supply sag).
    * Backlash then decides how much of it reaches the joint; joint damping and Coulomb friction (smoothed over
      ±0.05 rad/s) oppose motion.

    :meth:`torque` runs once per physics substep, so it works on plain Python floats: for four motors numpy's
    per-call overhead would outweigh the arithmetic (BENCHMARKS.md, Simulation speed). The MuJoCo biped runs the
    ideal path in C instead (``sim/_mjloop.c``, bit for bit the same), through :meth:`ideal_curves`,
    :meth:`commands_ahead` and :meth:`record`.
    """

    # torque(joint_vel_rad_s) → torque (N·m) per motor to apply during the next physics substep, given the joint
    # speeds (rad/s); reset() binds the ideal path or, when an actuator effect is active, the full one
    torque: Callable[[list[float] | np.ndarray], list[float]]

    def __init__(self, spec: ActionSpec, substep_s: float, substeps_per_command: int = 5) -> None:
        self.spec = spec
        self.substep_s = substep_s
        self.period_s = substep_s * substeps_per_command  # nominal control period, for the thermal model
        self.stall_nm = [float(m.torque_limit_nm) for m in spec.motors]
        self.no_load_rad_s = [float(m.no_load_speed_rad_s) for m in spec.motors]
        self.rotor_inertia_kgm2 = [float(m.rotor_inertia_kgm2) for m in spec.motors]
        self.reset(MotorParams())

    def reset(self, params: MotorParams) -> None:
        """Start an episode with zero torque in the pipeline and cold windings."""
        if params is not getattr(self, "params", None):  # the same object as the last episode's: nothing to derive
            self._derive(params)
        n = self.spec.n
        self._queue: deque[list[float]] = deque([0.0] * n for _ in range(self._delay_substeps))
        self._pending = [0.0] * n
        self.last_applied_nm: list[float] = [0.0] * n  # joint torque of the last substep (after damping/friction)
        self.last_motor_nm: list[float] = [0.0] * n  # motor torque of the last substep (∝ current)
        self._thermal.reset()
        self._lagged = [0.0] * n
        self._backlash = (
            Backlash(params.backlash_rad, self.rotor_inertia_kgm2, self.substep_s) if params.backlash_rad > 0 else None
        )
        self._commands = 0  # control steps commanded this episode (the enable ramp's clock)
        self.ramp_scale = 1.0

    def _derive(self, params: MotorParams) -> None:
        """The constants of an episode's motors (parameters are frozen: derived once per parameter object)."""
        self.params = params
        self._delay_substeps = int(round(params.latency_s / self.substep_s))
        self._peak = [params.strength * s for s in self.stall_nm]
        self._curves = list(zip(self._peak, self.no_load_rad_s, strict=True))  # (peak N·m, no-load rad/s) per motor
        self._limit = [params.torque_limit_scale * s for s in self.stall_nm]
        self._damping, self._friction = params.damping_nms_rad, params.friction_nm
        self._thermal = Thermal(
            [params.continuous_torque_ratio * pk for pk in self._peak], params.thermal_time_constant_s, self.period_s,
            derates=params.continuous_torque_ratio < 1.0,
        )  # fmt: skip
        self._lag = lag_gain(params.torque_lag_s, self.substep_s)
        # ideal: the episode's substep path is the ideal model (no torque lag, backlash or supply sag); then
        # ideal_curves(), commands_ahead() and record() let a compiled loop run the substeps
        self.ideal = params.torque_lag_s <= 0 and params.backlash_rad <= 0 and params.supply_sag <= 0
        self.torque = self._torque_ideal if self.ideal else self._torque_full

    def ideal_curves(self) -> tuple[list[float], list[float], float, float]:
        """The ideal path's parameters: (peak torque N·m, no-load speed rad/s) per motor, damping N·m·s/rad and
        Coulomb friction N·m."""
        return [c[0] for c in self._curves], [c[1] for c in self._curves], self._damping, self._friction

    def commands_ahead(self, n: int) -> list[list[float]]:
        """The torque commands (N·m, after latency) in force in the next ``n`` substeps, advancing the latency
        queue exactly as ``n`` calls of :meth:`torque` would (zero latency: the latched command, ``n`` times)."""
        if not self._delay_substeps:
            return [self._pending] * n
        queue, pending, out = self._queue, self._pending, []
        for _ in range(n):
            queue.append(pending)
            out.append(queue.popleft())
        return out

    def record(self, applied_nm: list[float], motor_nm: list[float]) -> None:
        """Joint and motor torques of the last substep, as a compiled loop computed them (:meth:`torque` does this
        itself)."""
        self.last_applied_nm, self.last_motor_nm = applied_nm, motor_nm

    @property
    def temperature_c(self) -> list[float]:
        """Winding temperature per motor, °C (I²t model; telemetry)."""
        return self._thermal.temperature_c

    def command(self, torque_nm: np.ndarray | list[float]) -> None:
        """Latch a new torque command (N·m) for the coming control period, scaled by the enable ramp and clipped
        to the firmware limit.

        Also closes the last period in the thermal model (heat ∝ the motor torque of its last substep).
        """
        thermal = self._thermal
        thermal.update(self.last_motor_nm)
        limit = thermal.limits(self._limit) if thermal.derates else self._limit
        ramp_s = self.params.enable_ramp_s
        self.ramp_scale = 1.0  # the enable ramp's scale on this command (a policy that reads its last action sees it)
        if ramp_s > 0 and (scale := self._commands * self.period_s / ramp_s) < 1.0:
            torque_nm = [max(-s, min(s, float(c))) * scale for c, s in zip(torque_nm, self.stall_nm, strict=True)]
            self.ramp_scale = scale
        self._commands += 1
        self._pending = [-lim if (t := float(c)) < -lim else (lim if t > lim else t)
                         for c, lim in zip(torque_nm, limit, strict=True)]  # fmt: skip

    def _torque_ideal(self, joint_vel_rad_s: list[float] | np.ndarray) -> list[float]:
        if self._delay_substeps:
            queue = self._queue
            queue.append(self._pending)
            active = queue.popleft()
        else:  # no latency: the queue would hand back what it was just given
            active = self._pending
        damping, friction, tanh = self._damping, self._friction, math.tanh
        out, motor = [], []
        # strict=False: strict zips cost time in this per-substep loop, and a wrong-length speed list already fails
        # when the simulator applies the returned torques
        for cmd, w, (peak, w0) in zip(active, joint_vel_rad_s, self._curves, strict=False):
            # back-EMF: driving torque falls linearly with speed in the driving direction; braking keeps the peak
            if cmd * w > 0:
                frac = 1.0 - (w if w > 0 else -w) / w0
                env = peak * frac if frac > 0.0 else 0.0
            else:
                env = peak
            tau = env if cmd > env else (-env if cmd < -env else cmd)
            motor.append(tau)
            out.append(tau - damping * w - friction * tanh(w * 20.0))  # Coulomb friction smoothed over ±0.05 rad/s
        self.last_applied_nm, self.last_motor_nm = out, motor
        return out

    def _torque_full(self, joint_vel_rad_s: list[float] | np.ndarray) -> list[float]:
        """The ideal path plus torque lag, supply sag and backlash (only runs when one of them is active)."""
        queue = self._queue
        queue.append(self._pending)
        active = queue.popleft()
        damping, friction, tanh = self._damping, self._friction, math.tanh
        volts = supply_fraction(self.params.supply_sag, self.last_motor_nm, self.stall_nm)
        lag, lagged, backlash = self._lag, self._lagged, self._backlash
        out, motor = [], []
        for i, (cmd, w, peak, w0) in enumerate(zip(active, joint_vel_rad_s, self._peak, self.no_load_rad_s, strict=False)):
            cmd = lagged[i] = lagged[i] + lag * (cmd - lagged[i])
            peak, w0 = peak * volts, w0 * volts
            if cmd * w > 0:
                frac = 1.0 - (w if w > 0 else -w) / w0 if w0 > 0 else 0.0
                env = peak * frac if frac > 0.0 else 0.0
            else:
                env = peak
            tau = env if cmd > env else (-env if cmd < -env else cmd)
            motor.append(tau)
            if backlash is not None:
                tau = backlash.transmit(i, tau)
            out.append(tau - damping * w - friction * tanh(w * 20.0))
        self.last_applied_nm, self.last_motor_nm = out, motor
        return out


def run_substeps(motor: MotorModel, motor_speeds: Callable[[], list[float]], substep: Callable[[list[float]], None],
                 joint_vel_rad_s: list[float], n: int) -> None:
    """``n`` physics substeps of a plant: the motor torques for the joint speeds, then one substep, each time.
    ``joint_vel_rad_s``: the speeds now (the last state read; nothing moved since), then ``motor_speeds()``."""
    torque = motor.torque
    for i in range(n):
        if i:
            joint_vel_rad_s = motor_speeds()
        substep(torque(joint_vel_rad_s))
