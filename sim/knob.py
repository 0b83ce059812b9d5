"""`s2r/Knob-v0`: two two-joint fingers turn a three-finned valve knob to a target angle (D'Claw style).

The knob is a hub with three vertical fins 120° apart on a vertical revolute joint with Coulomb friction and
viscous damping. Two fingers hang from a palm above it, on opposite sides (finger 1 is finger 0 turned 180° about
the knob axis, so the same command on both fingers turns the knob the same way). Each finger has

* a base joint whose axis points radially: it swings the finger tangentially, so a lowered fingertip pushes a fin
  around the knob axis (+ swings the tip so that it turns the knob counter-clockwise, seen from above);
* a distal joint whose axis is tangential: + folds the fingertip radially outwards, clear of the fins, − presses it
  in between them. One stroke turns a fin through up to ~80°; larger turns need a gait — engage, sweep,
  retract, swing back — alternating fingers or not (``tests/sim/test_knob.py`` scripts one: it solves the
  full task in ~200 of the 400 steps).

Both joints are torque-controlled through :class:`sim.motor.MotorModel` (latency, strength, torque–speed curve,
damping, friction), like the biped's. The geared servos' reflected rotor inertia is modelled as an armature on
each joint axis; it also keeps the explicit damping/friction terms of the motor model stable at 250 Hz.

Observation (20 × float32; names and units are ``sim.tasks.knob.KNOB_OBS_FIELDS``; built from the raw sensor frame
by ``KNOB_SPEC.build_obs(env.sensor_frame(), env.prev_action)``):

    =====  ======================================  =====  ==========  =========================================
    idx    name                                    unit   range       meaning
    =====  ======================================  =====  ==========  =========================================
    0-3    finger{0,1}_{base,distal}_angle         rad    [-1.6, 1.6] joint angles (encoders, noise + bias)
    4-7    finger{0,1}_{base,distal}_speed         rad/s  [-12, 12]   joint speeds
    8, 9   knob_sin, knob_cos                      1      [-1, 1]     knob angle (knob encoder, noisy)
    10     knob_speed                              rad/s  [-10, 10]   knob angular speed
    11,12  target_sin, target_cos                  1      [-1, 1]     target knob angle
    13     angle_error                             rad    [-π, π)     target − knob, wrapped
    14,15  contact_finger{0,1}                     bool   {0, 1}      distal link touches the knob
    16-19  prev_action_*                           1      [-1, 1]     normalized action of the last command
    =====  ======================================  =====  ==========  =========================================

Action: 4 floats in [-1, 1] (finger0_base, finger0_distal, finger1_base, finger1_distal) → torque = a · limit
(0.6 N·m). Out-of-range actions are clipped; NaN/inf raise ValueError.

Task: the knob starts at an angle uniform in ±60°, the target is 180° ± 60° away (uniform), so the shorter way is
120°–180° in either direction. Success: |angle error| < 0.1 rad held for 10 consecutive control steps.
The parameter ``goal_distance_scale`` (nominal 1: this task) scales each goal's signed shorter turn, for a
curriculum on goal distance (ADR over it: ``policies/presets/robust/knob_rl_adr.json``, RL without an expert).
Single-goal mode (default): success → ``terminated``. ``continuous_goals=True``: a new target 180° ± 60° away is
drawn after each success and ``info["consecutive_successes"]`` counts them (Dactyl's metric, ADR's signal).
``info["is_success"]`` is True once the episode has reached at least one goal. 400 control steps (8 s at 50 Hz)
→ ``truncated`` (TimeLimit). Other info keys: ``metrics`` (the task's: ``success``, ``consecutive_successes``;
see :mod:`sim.task`), ``reward_terms``, ``params``, ``fell`` (always False),
``angle_error_rad`` (to the current target) and ``applied_torque_nm`` (motor output in the last substep).

Reward (``info["reward_terms"]``, summed):
    distance = −5 · |angle error| (rad), every step
    near     = +10 once per goal, the first time |angle error| < 0.25 rad
    success  = +50 once per goal, when it is achieved (|angle error| < 0.1 rad for 10 steps)
    torque   = −0.1 · Σ a² (normalized actions)
    progress = +w · (|error| before − |error| after the step) (rad; w = 0 and absent by default; preset ``rl``)
The weights are fields of :class:`KnobReward` (``reward=`` of the constructor: an instance, a preset name of
``KNOB_REWARD_PRESETS`` or a dict of fields); its actuation-cost terms ``action_rate``, ``torque_sq``, ``power``,
``at_limit`` and ``action_acc`` (``sim/rewards.py``) are 0 and absent from ``reward_terms`` by default.
The bonuses are paid once per goal rather than every step near the goal: a per-step bonus would pay a policy to
hover next to the goal instead of finishing it (success ends the episode, or draws a new, distant target).

Privileged state: with ``privileged=True`` (constructor), ``info["privileged"]`` (reset and every step), float32,
for an asymmetric critic — exact joint and knob states, undelayed contacts, applied torques, the success hold, then
the episode's physical parameters; the layout is ``env.unwrapped.privileged_fields``
(``sim.tasks.knob.KNOB_PRIVILEGED_FIELDS`` + the table). Off by default: only a privileged critic reads it
(``s2r train --ppo-privileged-critic`` / ``--td3-privileged-critic`` turn it on), and it costs every step.

Physical parameters: ``KNOB_PARAMS`` (``env.unwrapped.param_space``); apply with
``env.reset(options={"params": {...}})``. Also accepted in ``options``: ``start_angle`` and ``goal_angle`` (rad)
to pin the initial knob angle and the first target (scripted tests, demos). 50 Hz control, 250 Hz physics,
deterministic for a given seed; ``render_mode="rgb_array"`` is headless.

Engine: ``engine="pybullet"`` (default; ``sim/knob_pybullet.py``, ``p.DIRECT`` with a client per env) or
``"mujoco"`` (``sim/knob_mujoco.py``, MJCF generated from the constants below). The task, motor model, sensors,
observation and reward are this module's and the same in both; docs/mujoco.md compares the physics.

Version History (a change that alters seeded episodes — physics, reward, observation, termination, a nominal
parameter — bumps the id's version, since a bundle's manifest pins its env id; a refactor that keeps episodes
bit-identical does not):

* v0: first release of ``s2r/Knob-v0``; the shipped bundle ``deploy/pretrained/knob`` pins it.
  ``engine="mujoco"`` (same ids) added a MuJoCo twin; PyBullet episodes stayed bit-identical.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple, Protocol

import gymnasium as gym
import numpy as np

from sim.engines import DEFAULT_ENGINE, check_engine
from sim.errors import UserError
from sim.motor import MotorModel, MotorParams
from sim.params import ParamSpace, PhysParam, motor_params, motor_params_from, param_fields, param_vector
from sim.rewards import ActuationWeights, actuation_terms, reward_weights
from sim.robots import KNOB_SPEC
from sim.sensors import DelayLine, Encoder, split_delay
from sim.spec import SensorFrame
from sim.tasks.knob import KNOB_PRIVILEGED_FIELDS

PHYSICS_HZ = 250.0
SUBSTEPS = int(round(PHYSICS_HZ / KNOB_SPEC.control_hz))

# ---- geometry (m), masses (kg), inertias (kg·m²) of the nominal hand and knob
FIN_RADIUS_M = 0.085  # fins reach from the hub to this radius
FIN_HALF_THICKNESS_M = 0.006
FIN_Z_M = (0.011, 0.055)  # bottom and top of the fins
HUB_RADIUS_M, HUB_HEIGHT_M = 0.02, 0.065
KNOB_MASS_KG = 0.25
KNOB_INERTIA_KGM2 = 5.0e-4  # about the knob axis: a ~0.2 kg valve handle
MOUNT_RADIUS_M = 0.09  # base joints sit this far from the knob axis...
MOUNT_HEIGHT_M = 0.155  # ...at this height
PROX_LENGTH_M, PROX_RADIUS_M, PROX_MASS_KG = 0.07, 0.009, 0.04
DIST_LENGTH_M, TIP_RADIUS_M, DIST_MASS_KG = 0.06, 0.01, 0.03  # distal length: joint to fingertip centre
ARMATURE_KGM2 = 2.0e-3  # reflected rotor inertia of a small geared servo, per joint axis
HOME_POSE_RAD = (0.0, 0.35, 0.0, 0.35)  # fingers hanging, tips folded out clear of the fins

START_RANGE_RAD = np.deg2rad(60.0)
GOAL_OFFSET_RAD = (np.deg2rad(120.0), np.deg2rad(240.0))
SUCCESS_TOL_RAD = 0.1
NEAR_TOL_RAD = 0.25
HOLD_STEPS = 10
GOAL_SCALE_MIN = 0.1  # nearest curriculum goal: 12°–18° of turn, inside one stroke

# link indices of the hand multibody; joint i drives link i
F0_BASE, F0_DIST, F1_BASE, F1_DIST = range(4)
MOTOR_JOINTS = [F0_BASE, F0_DIST, F1_BASE, F1_DIST]
TIP_LINKS = (F0_DIST, F1_DIST)
KNOB_LINK = 0


def _knob_motor_params() -> tuple[PhysParam, ...]:
    """The shared motor parameters, with damping/friction limits sized for 0.6 N·m finger servos (beyond them the
    explicit damping/friction terms of the motor model would also outrun the 250 Hz integration)."""
    high = {"joint_damping": 0.5, "joint_friction": 0.1}
    return tuple(dataclasses.replace(q, high=high[q.name]) if q.name in high else q for q in motor_params())


KNOB_PARAMS = ParamSpace(
    "knob",
    (
        PhysParam("knob_friction", "N·m", 0.02, 0.0, 0.2, "Coulomb friction torque of the knob joint"),
        PhysParam("knob_damping", "N·m·s/rad", 0.01, 0.0, 0.03, "viscous damping of the knob joint"),
        PhysParam(
            "knob_inertia_scale",
            "x",
            1.0,
            0.3,
            3.0,
            f"scale on knob inertia ({KNOB_INERTIA_KGM2} kg·m²)",
            True,
        ),
        PhysParam(
            "fingertip_friction", "1", 1.0, 0.1, 2.0, "lateral friction coefficient of fingertips and fins"
        ),
        PhysParam(
            "finger_mass_scale", "x", 1.0, 0.3, 3.0, "scale on finger link masses (not the armature)", True
        ),
        *_knob_motor_params(),
        PhysParam(
            "knob_encoder_noise", "rad", 0.0, 0.0, 0.1, "std of knob angle noise (speed noise is 10x, rad/s)"
        ),
        PhysParam(
            "goal_distance_scale",
            "x",
            1.0,
            GOAL_SCALE_MIN,
            1.0,
            "task, not plant: scale on each goal's turn from the knob (1: the task; < 1: a curriculum's nearer "
            "goals, e.g. ADR on goal distance for RL without an expert)",
        ),
    ),
)


def _wrap(angle_rad: float) -> float:
    """``sim.robots.wrap_angle`` for one Python float (to [−π, π)), without numpy's per-call overhead."""
    return (angle_rad + math.pi) % (2.0 * math.pi) - math.pi


def _angle_option(options: dict[str, Any], key: str) -> float:
    try:
        value = float(options[key])
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise UserError(f"reset option '{key}' must be a finite angle in rad, got {options[key]!r}")
    return value


def finger_link_inertia(
    link: int, mass_scale: float, armature_kgm2: float = ARMATURE_KGM2
) -> tuple[float, list[float]]:
    """Mass (kg) and principal inertia (kg·m², link frame x, y, z about the centre of mass) of finger link ``link``
    with its masses scaled by ``mass_scale``: a rod across its length plus ``armature_kgm2`` on its joint axis.

    The link turns about its joint axis only through its own joint (the base joints are fixed in the palm; the
    distal axis is perpendicular to the base axis), so inertia added on that axis is exactly a joint armature:
    PyBullet gets it here, MuJoCo (whose compiler rejects such a non-physical body) as the joint's armature."""
    is_base = link in (F0_BASE, F1_BASE)
    m, length = (PROX_MASS_KG, PROX_LENGTH_M) if is_base else (DIST_MASS_KG, DIST_LENGTH_M)
    rod = mass_scale * m * length**2 / 12  # about the link's centre, across its length
    axial = mass_scale * m * PROX_RADIUS_M**2 / 2
    # the armature adds to the joint axis only: y for base joints, x for distal joints
    inertia = [rod, rod + armature_kgm2, axial] if is_base else [rod + armature_kgm2, rod, axial]
    return mass_scale * m, inertia


class KnobState(NamedTuple):
    """Noise-free state after a reset or a control step (SI units)."""

    q: np.ndarray  # finger joint angles, rad (order of MOTOR_JOINTS)
    dq: np.ndarray  # finger joint speeds, rad/s
    knob_q: float  # knob angle, rad
    knob_dq: float  # knob speed, rad/s
    contacts: np.ndarray  # float32 0/1 per fingertip (order of TIP_LINKS): touches the knob


class KnobPlant(Protocol):
    """The engine-specific half of the knob (``sim/knob_pybullet.py``): what :class:`KnobEnv` asks of it."""

    def apply_params(self, P: dict[str, float]) -> None:
        """Knob friction, damping and inertia, finger masses and fingertip friction; physics step back to nominal."""

    def set_substep(self, dt_s: float, knob_friction_nm: float | None = None) -> None:
        """Physics time step (s) of the coming substeps (and the knob friction in N·m, if given)."""

    def reset_state(self, knob_angle_rad: float, q0: np.ndarray) -> None:
        """Knob at ``knob_angle_rad`` and the finger joints at ``q0`` (rad), all at rest."""

    def set_goal_marker(self, goal_rad: float) -> None:
        """Move the (visual only) goal marker to the knob angle ``goal_rad``."""

    def motor_speeds(self) -> list[float]:
        """Finger joint speeds (rad/s), order of ``MOTOR_JOINTS``."""
        ...

    def substep(self, torques_nm: list[float]) -> None:
        """Apply the motor torques (N·m) and advance one physics substep."""

    def read_state(self) -> KnobState:
        """Noise-free state now."""
        ...

    def render(self) -> np.ndarray:
        """A 320x320 RGB picture of the hand and knob."""
        ...

    def close(self) -> None:
        """Free the engine's resources."""


def make_plant(engine: str) -> KnobPlant:
    """The hand and knob in ``engine`` (one of ``sim.engines.ENGINES``)."""
    if check_engine(engine) == "mujoco":
        from sim.knob_mujoco import MujocoKnob

        return MujocoKnob()
    from sim.knob_pybullet import BulletKnob

    return BulletKnob()


@dataclasses.dataclass(frozen=True)
class KnobReward(ActuationWeights):
    """Reward weights of the knob task (module docstring, Reward; the actuation terms: ``sim.rewards``).

    The defaults are the v0 reward, bit for bit; ``KNOB_REWARD_PRESETS`` names the training variants."""

    distance: float = 5.0  # reward lost per rad of |angle error|, per control step
    near: float = 10.0  # paid once per goal, the first time |angle error| < 0.25 rad
    success: float = 50.0  # paid once per goal, when it is achieved
    torque: float = 0.1  # reward lost per unit of Σ a² per control step (a: normalized command)
    # reward per rad of |angle error| removed in the step (negative when it grows); 0: off, absent from the terms.
    # Potential-based shaping: over one goal it sums to the error removed, and random flailing earns nothing on
    # average, where the distance term charges it (a random walk of the error grows its mean)
    progress: float = 0.0


KNOB_REWARD_PRESETS: dict[str, KnobReward] = {
    "default": KnobReward(),
    # smooth, deployable torques (issue #20): the task terms are ~1-15 per step; these cost a chattering policy
    # a few per step and a smooth one next to nothing
    "smooth": KnobReward(action_rate=0.2, power_per_w=0.1, at_limit=0.2),
    # RL without an expert (issue #22): pays progress instead of charging distance, so a policy that keeps its
    # fingers off the knob (which the distance term pays for, against early exploration's random turning) gains
    # nothing
    "rl": KnobReward(distance=0.0, progress=20.0),
}


class KnobEnv(gym.Env):
    """Two 2-joint fingers turning a three-finned knob to a target angle (see module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(KNOB_SPEC.control_hz)}
    robot_spec = KNOB_SPEC
    param_space = KNOB_PARAMS
    privileged_fields = KNOB_PRIVILEGED_FIELDS + param_fields(KNOB_PARAMS)  # info["privileged"]'s layout

    def __init__(
        self,
        continuous_goals: bool = False,
        render_mode: str | None = None,
        engine: str = DEFAULT_ENGINE,
        reward: KnobReward | str | dict[str, float] | None = None,
        privileged: bool = False,
    ):
        check_engine(engine)
        self.privileged = bool(privileged)  # report info["privileged"] (an asymmetric critic's input)
        # reward weights: a KnobReward, a preset name of KNOB_REWARD_PRESETS, a JSON file or a dict of fields
        self.reward_weights = reward_weights(KnobReward, reward, KNOB_REWARD_PRESETS)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.continuous_goals = bool(continuous_goals)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(KNOB_SPEC.obs_dim,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(KNOB_SPEC.action.n,), dtype=np.float32)

        self.engine = engine
        self._plant = make_plant(engine)
        self._motor = MotorModel(KNOB_SPEC.action, 1.0 / PHYSICS_HZ, SUBSTEPS)
        self._encoder: Encoder | None = None  # sensor effects of the episode (None / -1 when off)
        self._delay: DelayLine[SensorFrame] | None = None
        self._capture_substep = -1
        self._limits_nm = KNOB_SPEC.action.limits_nm
        self.params = KNOB_PARAMS.nominal()
        self._frame: SensorFrame | None = None
        self._prev_action = np.zeros(4, dtype=np.float32)
        self._prev2_action = np.zeros(4, dtype=np.float32)
        self._goal = 0.0
        self._error = 0.0  # |angle error| after the last step, rad (the progress term's potential)
        self._hold = 0
        self._successes = 0
        self._near_paid = False

    # ------------------------------------------------------------------------------------------ model
    def _apply_params(self, P: dict[str, float]) -> None:
        self._plant.apply_params(P)
        kwargs = motor_params_from(P)
        if kwargs != getattr(self, "_motor_kwargs", None):  # the last episode's object when unchanged
            self._motor_kwargs, self._motor_params = kwargs, MotorParams(**kwargs)
        self._motor.reset(self._motor_params)
        self._encoder = Encoder(P["encoder_resolution"], KNOB_SPEC.control_period_s) if P["encoder_resolution"] else None
        periods, substeps = split_delay(P["sensor_delay"], KNOB_SPEC.control_period_s, SUBSTEPS)
        self._delay = DelayLine(periods) if periods else None
        self._capture_substep = SUBSTEPS - 1 - substeps if substeps else -1

    # ------------------------------------------------------------------------------------------- api
    @property
    def prev_action(self) -> np.ndarray:
        """Normalized action of the last command (zeros after reset): the observation's last 4 entries."""
        return self._prev_action

    @property
    def goal_angle(self) -> float:
        """Current target knob angle, rad (same branch as the knob joint angle)."""
        return self._goal

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        self.params = KNOB_PARAMS.validate(options.get("params"))
        pinned = {k: _angle_option(options, k) for k in ("start_angle", "goal_angle") if k in options}
        self._apply_params(self.params)
        rng = self.np_random
        start = pinned.get("start_angle", float(rng.uniform(-START_RANGE_RAD, START_RANGE_RAD)))
        self._plant.reset_state(start, np.asarray(HOME_POSE_RAD) + rng.uniform(-0.05, 0.05, 4))
        self._set_goal(pinned["goal_angle"] if "goal_angle" in pinned else self._draw_goal(start))
        self._error = abs(_wrap(self._goal - start))  # |angle error| after the last step, rad (progress term)
        self._successes = 0
        self._prev_action = np.zeros(4, dtype=np.float32)
        self._prev2_action = np.zeros(4, dtype=np.float32)
        self._frame = self._delayed(self._measure(*self._plant.read_state()))
        obs = KNOB_SPEC.build_obs(self._frame, self._prev_action)
        info = {"params": dict(self.params), "is_success": False, "consecutive_successes": 0}
        self._param_vec: np.ndarray | None = None  # the privileged state's tail: made when first asked
        if self.privileged:
            info["privileged"] = self._privileged(self._plant.read_state())
        return obs, info

    def step(self, action: np.ndarray):
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (4,) or not np.isfinite(a).all():
            return self.step_torque(KNOB_SPEC.action.to_torque_nm(a))  # raises the spec's one-line error
        # = KNOB_SPEC.action.to_torque_nm(a), bit for bit, without rebuilding the limits array every step
        return self.step_torque((a.clip(-1.0, 1.0) * self._limits_nm).astype(np.float32))

    def step_torque(self, torque_nm: np.ndarray):
        """Advance one control period with motor torque commands in N·m (clamped by the motor model)."""
        tau_cmd = np.asarray(torque_nm, dtype=np.float64).reshape(-1)
        if tau_cmd.shape != (4,) or not np.isfinite(tau_cmd).all():
            raise ValueError(
                f"torque command must be 4 finite values in N·m, got {np.asarray(torque_nm).tolist()}"
            )
        if self._frame is None:
            raise RuntimeError("call reset() before step()")
        P = self.params
        self._motor.command(tau_cmd)
        # = KNOB_SPEC.action.to_normalized(tau_cmd), bit for bit
        a_norm = (tau_cmd.astype(np.float32) / self._limits_nm).clip(-1.0, 1.0)
        if self._motor.ramp_scale < 1.0:  # the enable ramp: the last action is what the motors were told, as on
            a_norm = a_norm * np.float32(self._motor.ramp_scale)  # the robot (deploy.runtime's prev_action)
        if P["control_jitter"] > 0:
            period = float(
                np.clip(self.np_random.normal(1.0 / KNOB_SPEC.control_hz, P["control_jitter"]), 0.01, 0.03)
            )
            self._plant.set_substep(period / SUBSTEPS)
        motor_speeds, substep, motor_torque = self._plant.motor_speeds, self._plant.substep, self._motor.torque
        captured, capture_at = None, self._capture_substep
        for i in range(SUBSTEPS):
            substep(motor_torque(motor_speeds()))
            if i == capture_at:  # a sensor delay that is not a whole number of periods: read mid-period
                captured = self._measure(*self._plant.read_state())

        state = self._plant.read_state()
        error = abs(_wrap(self._goal - state[2]))
        w = self.reward_weights
        terms = {
            "distance": -w.distance * error,
            "near": 0.0,
            "success": 0.0,
            "torque": -w.torque * float(np.dot(a_norm, a_norm)),
        }
        if w.progress:  # off by default (v0)
            terms["progress"] = w.progress * (self._error - error)
        if w.actuation_on:  # off by default: the v0 reward and info, untouched
            terms.update(actuation_terms(w, a_norm.tolist(), self._prev_action.tolist(), self._motor.last_applied_nm,
                                         self._plant.motor_speeds(), self._prev2_action.tolist()))  # fmt: skip
        if error < NEAR_TOL_RAD and not self._near_paid:
            terms["near"], self._near_paid = w.near, True
        self._hold = self._hold + 1 if error < SUCCESS_TOL_RAD else 0
        achieved = self._hold >= HOLD_STEPS
        if achieved:
            terms["success"] = w.success
            self._successes += 1
            if self.continuous_goals:
                self._set_goal(self._draw_goal(state[2]))
                error = abs(_wrap(self._goal - state[2]))  # progress counts towards the new goal from here
        self._error = error
        self._prev2_action, self._prev_action = self._prev_action, a_norm
        self._frame = self._delayed(captured if captured is not None else self._measure(*state))
        obs = KNOB_SPEC.build_obs(self._frame, self._prev_action)
        info = {
            "reward_terms": terms,
            "params": dict(self.params),
            "fell": False,
            "is_success": self._successes > 0,
            "consecutive_successes": self._successes,
            "metrics": {"success": float(self._successes > 0), "consecutive_successes": float(self._successes)},
            "angle_error_rad": _wrap(self._goal - state[2]),
            "applied_torque_nm": np.asarray(self._motor.last_applied_nm, dtype=np.float32),
            "motor_temp_c": self._motor.temperature_c,
        }
        if self.privileged:
            info["privileged"] = self._privileged(state)
        terminated = achieved and not self.continuous_goals
        return obs, float(sum(terms.values())), terminated, False, info

    def sensor_frame(self) -> SensorFrame:
        """Raw readings (SI units, with noise) that the last observation was built from."""
        if self._frame is None:
            raise RuntimeError("call reset() first")
        return self._frame

    # -------------------------------------------------------------------------------------- internals
    def _draw_goal(self, knob_angle_rad: float) -> float:
        offset = float(self.np_random.uniform(*GOAL_OFFSET_RAD))
        scale = self.params["goal_distance_scale"]
        if scale == 1.0:  # the task as released (v0 episodes bit for bit)
            return knob_angle_rad + offset
        return knob_angle_rad + scale * _wrap(offset)  # the same directions, nearer: 120°–180° × scale either way

    def _set_goal(self, goal_rad: float) -> None:
        self._goal = goal_rad
        self._hold = 0
        self._near_paid = False
        self._plant.set_goal_marker(goal_rad)

    def _delayed(self, frame: SensorFrame) -> SensorFrame:
        return frame if self._delay is None else self._delay.push(frame)

    def _privileged(self, s: KnobState) -> np.ndarray:
        """``info["privileged"]`` now (layout: ``privileged_fields``)."""
        if self._param_vec is None:  # the episode's physical parameters, once per episode
            self._param_vec = param_vector(KNOB_PARAMS, self.params)
        return np.concatenate([
            np.asarray(s.q, dtype=np.float32), np.asarray(s.dq, dtype=np.float32),
            np.array([math.sin(s.knob_q), math.cos(s.knob_q), s.knob_dq, _wrap(self._goal - s.knob_q),
                      *s.contacts, *self._motor.last_applied_nm, min(self._hold / HOLD_STEPS, 1.0)], dtype=np.float32),
            self._param_vec,
        ])  # fmt: skip

    def _measure(
        self, q: np.ndarray, dq: np.ndarray, knob_q: float, knob_dq: float, contacts: np.ndarray
    ) -> SensorFrame:
        """Sensor readings with the noise of the parameters in force (randomness from ``self.np_random``)."""
        P, rng = self.params, self.np_random
        q = q + P["encoder_bias"]
        if self._encoder is not None:
            q_list, dq_list = self._encoder.read(q.tolist())
            q, dq = np.array(q_list), np.array(dq_list)
        if P["encoder_noise"] > 0:
            q = q + rng.normal(0.0, P["encoder_noise"], 4)
            dq = dq + rng.normal(0.0, 10 * P["encoder_noise"], 4)
        if P["knob_encoder_noise"] > 0:
            knob_q += rng.normal(0.0, P["knob_encoder_noise"])
            knob_dq += rng.normal(0.0, 10 * P["knob_encoder_noise"])
        return SensorFrame(
            joint_pos_rad=q.astype(np.float32),
            joint_vel_rad_s=dq.astype(np.float32),
            contacts=contacts,
            aux=np.array([knob_q, knob_dq, self._goal], dtype=np.float32),
        )

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._plant.render()

    def close(self) -> None:
        if getattr(self, "_plant", None) is not None:
            self._plant.close()
            self._plant = None  # type: ignore[assignment]
