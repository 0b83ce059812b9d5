"""One ``Task`` record per robot, and the registry every stage looks robots up in (numpy only).

A robot is known to s2r through exactly one record, defined in one module (``sim/tasks/<robot>.py`` for the
robots that ship, any module for a new one): its spec, its physical parameter space, its Gymnasium ids, the
metrics its envs report in ``info["metrics"]`` (which of them is the performance and which the failure), the
held-out plants, the reality box, the fixed-DR presets, the ADR defaults, the stress sweeps, the scripted
experts and the learner presets, and a reference to the env's reward-weight presets. Every stage reads the
record it needs from here — ``sim`` registers the env ids, ``domain_rand`` builds DR/ADR/plants from the tables,
``policies`` finds presets and experts, ``deploy`` finds the spec of a bundle's robot — so adding a robot changes
no other file: define a :class:`Task` and call :func:`register_task`.

The contract between an env and the stages above it (rsl_rl's ``extras["log"]`` idea): every step's ``info``
holds ``"metrics"``, a flat ``{name: float}`` dict that always has ``"success"`` (1.0 once the episode counts as
a success, see :attr:`Task.success_text`) and the task's :attr:`Task.failure` key when it has one. Evaluation,
``s2r stress``, ADR and training logs average these keys without knowing what they mean.

Process boundaries: a robot registered by a module outside ``sim/tasks`` is known to another process (the HIL
harness's ``s2r emulate`` and ``s2r run``) when that module is named in the environment variable ``S2R_TASKS``
(comma-separated module names or ``.py`` paths), which the registry imports on the first unknown name.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import UserError
from sim.params import ENABLE_RAMP_S
from sim.spec import RobotSpec

Ranges = Mapping[str, tuple[float, float]]  # parameter → (low, high) in its unit
TASKS_ENV_VAR = "S2R_TASKS"


@dataclass(frozen=True)
class EnvVariant:
    """One Gymnasium id of a robot (the biped has three terrains), with its learner presets."""

    name: str  # the CLI's short name (biped, biped-rough, arm...)
    gym_id: str  # the Gymnasium id a bundle's manifest pins (s2r/Biped-v0)
    entry_point: str | Callable[..., Any]  # "module:Class" or the env class itself
    max_episode_steps: int  # the TimeLimit, control steps
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # gym.make keyword arguments of this id
    # learner presets: algo (td3, ppo, lstm-td3) → a preset file (YAML/TOML, `s2r train --config` shape; a
    # relative path is relative to policies/presets/) or the algo_config mapping itself
    presets: Mapping[str, str | Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """Everything s2r knows about one robot (see the module docstring); each table is plain data."""

    spec: RobotSpec  # observation layout, motors, sensors, control rate: what sim and controller share
    params: Any  # the sim.params.ParamSpace, or "module:attr" naming it (the env module imports the simulator)
    envs: tuple[EnvVariant, ...]  # the first is the robot's default env
    success_text: str  # what info["metrics"]["success"] means, in words (reports print it)
    metrics: tuple[str, ...] = ("success",)  # the keys of info["metrics"] the env reports ("success" among them)
    performance: str = "success"  # info["metrics"] key that evaluation tables call the performance
    failure: str | None = None  # info["metrics"] key of a failure (a fall), None: the task cannot fail that way
    plants: Mapping[str, Mapping[str, Mapping[str, float]]] = field(default_factory=dict)  # suite → plant → params
    reality_box: Ranges = field(default_factory=dict)  # an uncalibrated real robot's ranges (s2r stress)
    dr_presets: Mapping[str, Ranges] = field(default_factory=dict)  # --dr NAME → ranges
    adr: Mapping[str, Any] | None = None  # ADR defaults, the shape of an --adr-config JSON file
    stress_sweeps: tuple[tuple[str, tuple[float, ...]], ...] = ()  # (parameter, values from nominal outward)
    experts: Mapping[str, str | Callable[[Any], Any]] = field(default_factory=dict)  # name → "module:function"
    # the env's reward-weight presets (name → frozen weights dataclass, sim.rewards.ActuationWeights), or
    # "module:attr" naming them in the env module (the env's reward= option takes a name of this table)
    reward_presets: Mapping[str, Any] | str | None = None
    # mass moved along the ground, kg, or "module:attr" naming it (cost of transport); None: does not travel
    walking_mass_kg: float | str | None = None

    @property
    def name(self) -> str:
        return self.spec.robot_id

    def param_space(self) -> Any:
        """The robot's :class:`sim.params.ParamSpace` (imports the env module when given as "module:attr")."""
        return _resolve(self.params) if isinstance(self.params, str) else self.params

    def rewards(self) -> dict[str, Any]:
        """The robot's reward-weight presets, by name (empty: the env has none)."""
        found = self.reward_presets
        return dict(_resolve(found) if isinstance(found, str) else found or {})

    def walking_mass(self) -> float | None:
        """Mass moved along the ground, kg (None: the robot does not travel)."""
        m = self.walking_mass_kg
        return float(_resolve(m)) if isinstance(m, str) else m

    def expert(self, name: str) -> Callable[[Any], Any]:
        """The scripted expert ``name``: one raw observation → a normalized action in [-1, 1]."""
        if name not in self.experts:
            raise UserError(f"no scripted expert '{name}' for {self.name}; experts: {', '.join(self.experts) or '(none)'}")
        found = self.experts[name]
        return _resolve(found) if isinstance(found, str) else found

    def plant_suite(self, suite: str) -> dict[str, dict[str, float]]:
        """The named plants of ``suite`` (``nominal`` first), copies; ``nominal`` is the nominal plant alone."""
        if suite == "nominal":
            return {"nominal": {}}
        if suite not in self.plants:
            raise UserError(f"unknown plant suite '{suite}' for {self.name}; suites: nominal, {', '.join(self.plants)}")
        return {name: dict(values) for name, values in self.plants[suite].items()}


def _resolve(entry: str) -> Any:
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


BUILTIN_TASKS = ("sim.tasks.biped", "sim.tasks.knob")  # the robots that ship, each registers itself on import
_TASKS: dict[str, Task] = {}
_BY_ENV: dict[str, tuple[Task, EnvVariant]] = {}  # short name and Gymnasium id → (task, variant)
_listeners: list[Callable[[Task], None]] = []
_builtins_loaded = False
_plugins_loaded = False


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in BUILTIN_TASKS:
            importlib.import_module(module)


def register_task(task: Task) -> Task:
    """Make ``task`` known to every stage (and its env ids to Gymnasium). Registering the same record again is a
    no-op; another record under a taken robot name or env id is a UserError."""
    old = _TASKS.get(task.name)
    if old is not None:
        if old == task:
            return task
        raise UserError(f"robot '{task.name}' is already registered; pick another robot_id")
    for v in task.envs:
        for key in (v.name, v.gym_id):
            if key in _BY_ENV:
                raise UserError(f"env '{key}' of {task.name} is already registered by {_BY_ENV[key][0].name}")
    if not task.envs:
        raise UserError(f"robot '{task.name}' lists no env")
    _TASKS[task.name] = task
    for v in task.envs:
        _BY_ENV[v.name] = _BY_ENV[v.gym_id] = (task, v)
    for listener in _listeners:
        listener(task)
    return task


def on_register(listener: Callable[[Task], None]) -> None:
    """Call ``listener(task)`` for every task registered so far and from now on (sim registers Gymnasium ids)."""
    _load_builtins()
    _listeners.append(listener)
    for task in list(_TASKS.values()):
        listener(task)


def _load_plugins() -> None:
    global _plugins_loaded
    _load_builtins()
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in filter(None, (e.strip() for e in os.environ.get(TASKS_ENV_VAR, "").split(","))):
        if entry.endswith(".py"):
            spec = importlib.util.spec_from_file_location(f"s2r_task_{Path(entry).stem}", entry)
            if spec is None or spec.loader is None or not Path(entry).is_file():
                raise UserError(f"{TASKS_ENV_VAR}: no robot module file {entry}; give module names or .py paths")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        elif _find_module(entry) is None:
            raise UserError(f"{TASKS_ENV_VAR}: no module '{entry}'; give module names or .py paths, comma-separated")
        else:
            importlib.import_module(entry)


def _find_module(name: str) -> Any:
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:  # a missing parent package
        return None


def tasks() -> dict[str, Task]:
    """Every registered robot, by name (the shipped ones first)."""
    _load_plugins()
    return dict(_TASKS)


def get_task(robot: str) -> Task:
    """The task of robot ``robot``; a one-line UserError naming the known robots otherwise."""
    _load_builtins()
    if robot not in _TASKS:
        _load_plugins()
    try:
        return _TASKS[robot]
    except KeyError:
        raise UserError(f"unknown robot '{robot}'; known robots: {', '.join(_TASKS)}") from None


def find_env(env: str) -> tuple[Task, EnvVariant] | None:
    """(task, variant) of an s2r env given by short name or Gymnasium id; None for any other env."""
    _load_builtins()
    if env not in _BY_ENV:
        _load_plugins()
    return _BY_ENV.get(env)


def task_of_env(env: str) -> Task | None:
    """The task an env (short name or Gymnasium id) belongs to; None for an env that is not an s2r robot's."""
    found = find_env(env)
    return None if found is None else found[0]


def env_variants() -> dict[str, EnvVariant]:
    """Every s2r env by short name."""
    _load_plugins()
    return {v.name: v for t in _TASKS.values() for v in t.envs}


# ------------------------------------------------------------------------ shared by every torque-motor robot
# the reality box of the motor model and encoders (sim.params.motor_params): what a team that built the robot to
# the nominal drawings, but measured nothing, should expect; `s2r stress` draws every parameter at once
ACTUATOR_BOX: dict[str, tuple[float, float]] = {
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
    "enable_ramp": (ENABLE_RAMP_S, ENABLE_RAMP_S),  # the controller's ramp at every start on a real-time board
}
# `s2r stress` sweeps of the motor model and encoders: (parameter, values from nominal outward)
MOTOR_SWEEPS: tuple[tuple[str, tuple[float, ...]], ...] = (
    ("action_latency", (0.004, 0.008, 0.012, 0.02, 0.03, 0.04, 0.06)),
    ("sensor_delay", (0.004, 0.008, 0.012, 0.02, 0.04)),
    ("control_jitter", (0.001, 0.002, 0.004, 0.008)),
    ("torque_lag", (0.002, 0.005, 0.01, 0.02, 0.04)),
    ("backlash", (0.005, 0.0175, 0.035, 0.07)),
    ("encoder_resolution", (16384.0, 4096.0, 1024.0, 256.0)),
    ("encoder_noise", (0.002, 0.005, 0.01, 0.02, 0.05)),
    ("encoder_bias", (-0.02, -0.05, -0.1, -0.2)),
    ("encoder_bias", (0.02, 0.05, 0.1, 0.2)),
    ("motor_strength", (0.85, 0.7, 0.5, 0.3)),
    ("motor_strength", (1.15, 1.3, 1.5)),
    ("torque_limit_scale", (0.85, 0.7, 0.5, 0.3)),
    ("supply_sag", (0.05, 0.1, 0.2, 0.4)),
    ("continuous_torque_ratio", (0.8, 0.6, 0.4, 0.2)),
    ("enable_ramp", (0.1, 0.25, 0.5, 1.0)),
)
