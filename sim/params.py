"""Physical parameters: the one interface between the simulator and domain randomization.

Every quantity a real robot differs in (friction, masses, motor strength, latency, sensor noise...) is a named
:class:`PhysParam` with a unit, a nominal value and hard limits. An env exposes its :class:`ParamSpace` as
``env.unwrapped.param_space`` and applies values given as ``env.reset(options={"params": {...}})``. Pure
python/numpy: domain_rand and the firmware emulator read the same tables.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from sim.errors import UserError
from sim.spec import ObsField


@dataclass(frozen=True)
class PhysParam:
    """A physical parameter of a simulated robot."""

    name: str
    unit: str
    nominal: float
    low: float  # hard limit: the simulator refuses values outside [low, high]
    high: float
    doc: str
    log_scale: bool = False  # scale factors: samplers draw these log-uniformly

    def __post_init__(self) -> None:
        if not (self.low <= self.nominal <= self.high):
            raise ValueError(f"parameter '{self.name}': nominal {self.nominal} outside [{self.low}, {self.high}]")
        if self.log_scale and self.low <= 0:
            raise ValueError(f"parameter '{self.name}': log-scale parameters need low > 0, got {self.low}")


@dataclass(frozen=True)
class ParamSpace:
    """An ordered table of physical parameters for one robot."""

    robot_id: str
    params: tuple[PhysParam, ...]

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate parameter names in {self.robot_id}: {names}")

    def __iter__(self) -> Iterator[PhysParam]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.params)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def __getitem__(self, name: str) -> PhysParam:
        for p in self.params:
            if p.name == name:
                return p
        raise UserError(
            f"unknown physical parameter '{name}' for {self.robot_id}; known: {', '.join(self.names)}"
        )

    def nominal(self) -> dict[str, float]:
        """All parameters at their nominal values."""
        return dict(self._nominal)

    @functools.cached_property
    def _nominal(self) -> dict[str, float]:  # every env reset starts from it
        return {p.name: float(p.nominal) for p in self.params}

    def validate(self, values: Mapping[str, float] | None) -> dict[str, float]:
        """Check names and hard limits; return the complete table (missing names take their nominal value).

        Raises ValueError naming the parameter and its legal range, so a user sees exactly what to fix.
        """
        out = self.nominal()
        for name, value in (values or {}).items():
            p = self[name]  # raises on an unknown name
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise UserError(f"parameter '{name}' must be a number in {p.unit}, got {value!r}") from None
            if not np.isfinite(v) or not (p.low <= v <= p.high):
                raise UserError(
                    f"parameter '{name}' = {v:g} {p.unit} is outside its hard limits [{p.low:g}, {p.high:g}] {p.unit}"
                )
            out[name] = v
        return out

    def rows(self) -> list[tuple[str, str, str, str, str, str]]:
        """Table rows (name, unit, nominal, low, high, doc) for printing."""
        return [(p.name, p.unit, f"{p.nominal:g}", f"{p.low:g}", f"{p.high:g}", p.doc) for p in self.params]


# the controller's torque ramp after ENABLE on a real-time board, s: deploy.runtime's default (--ramp-ms), and the
# reality box's enable_ramp (sim.task.ACTUATOR_BOX), since a policy meets it at every start on the robot
ENABLE_RAMP_S = 0.5


def motor_params(prefix_doc: str = "") -> tuple[PhysParam, ...]:
    """Parameters every torque-motor robot shares (motor model and encoders)."""
    return (
        PhysParam("motor_strength", "x", 1.0, 0.3, 1.5, f"{prefix_doc}scale on every motor's torque limit", True),
        PhysParam("torque_limit_scale", "x", 1.0, 0.3, 1.5, "scale on the firmware torque clamp (N·m limits)", True),
        PhysParam("joint_damping", "N·m·s/rad", 0.05, 0.0, 2.0, "viscous damping in every motor joint"),
        PhysParam("joint_friction", "N·m", 0.02, 0.0, 1.0, "Coulomb friction in every motor joint"),
        PhysParam("action_latency", "s", 0.0, 0.0, 0.1, "delay between a command and the torque it produces"),
        PhysParam("control_jitter", "s", 0.0, 0.0, 0.01, "std of the control period jitter"),
        PhysParam("encoder_noise", "rad", 0.0, 0.0, 0.1, "std of joint angle noise (speed noise is 10x in rad/s)"),
        PhysParam("encoder_bias", "rad", 0.0, -0.2, 0.2, "constant offset on every joint angle reading"),
        # actuator and sensor effects (sim/actuator.py, sim/sensors.py): each is exactly off at its nominal value
        PhysParam("torque_lag", "s", 0.0, 0.0, 0.05,
                  "time constant of the first-order lag from commanded to produced torque (current-loop bandwidth)"),
        PhysParam("backlash", "rad", 0.0, 0.0, 0.1, "gear backlash: total free play between rotor and joint"),
        PhysParam("encoder_resolution", "counts/rev", 0.0, 0.0, 2.0**20,
                  "joint encoder counts per revolution (0 = ideal); joint speed is then the board's finite "
                  "difference of the counts over one control period"),
        PhysParam("sensor_delay", "s", 0.0, 0.0, 0.1,
                  "age of every sensor reading when the policy gets it, apart from action_latency (step: 1 substep)"),
        PhysParam("supply_sag", "1", 0.0, 0.0, 0.5,
                  "fractional bus-voltage drop with every motor at stall current; stall torque and no-load speed "
                  "scale with the voltage"),
        PhysParam("continuous_torque_ratio", "1", 1.0, 0.1, 1.0,
                  "continuous torque rating / stall torque (I²t model); while a winding is above its rated "
                  "temperature the firmware derates the limit to it (1 = never derated)"),
        PhysParam("thermal_time_constant", "s", 60.0, 1.0, 1200.0, "winding thermal time constant (I²t model)"),
        PhysParam("enable_ramp", "s", 0.0, 0.0, 2.0,
                  "the controller's torque ramp after ENABLE: each episode's commands are scaled from 0 to full over "
                  "this long (deploy.runtime ramps on a real-time board; 0 = none, as a lockstep emulator)"),
    )


def motor_params_from(P: Mapping[str, float]) -> dict[str, float]:
    """The ``sim.motor.MotorParams`` keyword arguments for a validated parameter table (every robot's)."""
    return {
        "strength": P["motor_strength"],
        "torque_limit_scale": P["torque_limit_scale"],
        "damping_nms_rad": P["joint_damping"],
        "friction_nm": P["joint_friction"],
        "latency_s": P["action_latency"],
        "torque_lag_s": P["torque_lag"],
        "backlash_rad": P["backlash"],
        "supply_sag": P["supply_sag"],
        "continuous_torque_ratio": P["continuous_torque_ratio"],
        "thermal_time_constant_s": P["thermal_time_constant"],
        "enable_ramp_s": P["enable_ramp"],
    }


def param_fields(space: ParamSpace) -> tuple[ObsField, ...]:
    """The physical parameters as the tail of a privileged-state layout (``sim.robots``): one field
    ``param_<name>`` per parameter, in table order, in the parameter's unit; the resolution (the critic's
    normalizer floor) is 1 % of the hard-limit range."""
    return tuple(ObsField(f"param_{p.name}", p.unit, p.low, p.high, f"episode's {p.doc}", (p.high - p.low) / 100.0)
                 for p in space)  # fmt: skip


def param_vector(space: ParamSpace, values: Mapping[str, float]) -> np.ndarray:
    """The values of a complete parameter table in ``space``'s order, float32 (see :func:`param_fields`)."""
    return np.array([values[name] for name in space.names], dtype=np.float32)
