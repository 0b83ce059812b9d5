"""Actuator effects every real torque motor has, beyond the ideal DC-motor envelope of :mod:`sim.motor`.

Pure Python/numpy and engine-independent: :class:`sim.motor.MotorModel` composes these per physics substep, for
every robot and for the firmware emulator (which steps the same env). Each effect is a named physical parameter
(``sim.params.motor_params``) that is exactly inactive at its nominal value.

* :func:`lag_gain` — first-order torque lag (current-loop bandwidth): ``τ' = (τ_cmd − τ) / T``.
* :class:`Backlash` — free play between rotor and joint: torque reaches the joint only while the gear teeth are
  in contact; a torque reversal first accelerates the rotor (its reflected inertia) across the gap.
* :func:`supply_fraction` — supply sag: the bus voltage falls with the current drawn, and with it the stall
  torque and no-load speed of every motor (the torque–speed curve shrinks toward the origin).
* :class:`Thermal` — I²t winding model ``T_th · dθ/dt = (τ/τ_cont)² − θ``, θ = temperature rise as a fraction of
  the rated rise; the firmware derates the torque limit to the continuous rating while θ > 1 (hysteresis: until
  θ < :data:`DERATE_RELEASE`), as ODrive/VESC-style I²t limiters do.
"""

from __future__ import annotations

import math

AMBIENT_C = 25.0  # winding temperature at θ = 0, °C
RATED_RISE_K = 75.0  # winding temperature rise at the continuous torque rating (θ = 1), K
DERATE_RELEASE = 0.9  # derating ends when θ falls below this (hysteresis)


def lag_gain(time_constant_s: float, substep_s: float) -> float:
    """Per-substep gain of an exact first-order lag (1 = no lag)."""
    return 1.0 if time_constant_s <= 0.0 else 1.0 - math.exp(-substep_s / time_constant_s)


def supply_fraction(sag: float, motor_nm: list[float], stall_nm: list[float]) -> float:
    """Bus voltage as a fraction of nominal: ``1 − sag · mean(|τ| / stall)`` over the motors (current ∝ torque)."""
    if sag <= 0.0:
        return 1.0
    load = sum(abs(t) / s for t, s in zip(motor_nm, stall_nm, strict=True)) / len(stall_nm)
    return max(1.0 - sag * load, 0.0)


class Backlash:
    """Gear free play of ``width_rad`` (total) per motor, with the rotor's reflected inertia on the motor side.

    State per motor: ``gap`` (rotor angle minus joint angle, in [−width/2, width/2]), ``slip`` (its rate) and
    ``side`` (+1/−1 while the teeth touch on that side, 0 while the rotor crosses the gap). In contact, torque
    pushing into the contact is transmitted; a torque of the other sign lifts off and accelerates the rotor across
    the gap (the joint's own acceleration is neglected next to the light rotor's), transmitting nothing until
    the teeth meet again.
    """

    def __init__(self, width_rad: float, rotor_inertia_kgm2: list[float], substep_s: float) -> None:
        self.half = width_rad / 2.0
        self.inertia = list(rotor_inertia_kgm2)
        self.dt = substep_s
        n = len(self.inertia)
        self.gap, self.slip, self.side = [0.0] * n, [0.0] * n, [0] * n

    def transmit(self, i: int, torque_nm: float) -> float:
        """Torque (N·m) that motor ``i``'s joint receives this substep."""
        side = self.side[i]
        if side != 0:
            if torque_nm * side >= 0.0:
                return torque_nm  # teeth in contact, pushing into it (or idle)
            self.side[i] = side = 0  # the rotor lifts off toward the other side
            self.slip[i] = 0.0
        slip = self.slip[i] + torque_nm / self.inertia[i] * self.dt
        gap = self.gap[i] + slip * self.dt
        if gap >= self.half or gap <= -self.half:  # teeth meet: the rotor stops relative to the joint
            self.gap[i] = self.half if gap > 0 else -self.half
            self.slip[i], self.side[i] = 0.0, (1 if gap > 0 else -1)
        else:
            self.gap[i], self.slip[i] = gap, slip
        return 0.0


class Thermal:
    """I²t winding temperature per motor and the firmware's derating to the continuous torque rating."""

    def __init__(
        self, continuous_nm: list[float], time_constant_s: float, period_s: float, derates: bool = True
    ) -> None:
        self.continuous_nm = list(continuous_nm)
        self.gain = 1.0 - math.exp(-period_s / time_constant_s)
        self.derates = derates  # False: track the temperature only (a motor rated for its peak torque)
        self.reset()

    def reset(self) -> None:
        """Cold start: every winding at ambient, none derated."""
        self.theta = [0.0] * len(self.continuous_nm)
        self.derating = [False] * len(self.continuous_nm)

    def update(self, motor_nm: list[float]) -> None:
        """Advance one control period with the motors' torques (N·m, ∝ current) over it."""
        g = self.gain
        self.theta = theta = [
            th + ((t / c) ** 2 - th) * g for th, t, c in zip(self.theta, motor_nm, self.continuous_nm, strict=False)
        ]
        if self.derates:
            self.derating = [th > 1.0 or (d and th >= DERATE_RELEASE) for th, d in zip(theta, self.derating, strict=True)]

    def limits(self, limits_nm: list[float]) -> list[float]:
        """The firmware torque limits after derating (the continuous rating while a motor is too hot)."""
        if not self.derates:
            return limits_nm
        return [min(lim, c) if d else lim for lim, c, d in zip(limits_nm, self.continuous_nm, self.derating, strict=True)]

    @property
    def temperature_c(self) -> list[float]:
        return [AMBIENT_C + RATED_RISE_K * th for th in self.theta]
