"""`s2r/Biped-v0`: a planar biped on a boom (RABBIT / MABEL style) in PyBullet or MuJoCo.

The hull (torso) is attached to the world by a boom modelled as three joints — slide in x, slide in z, pitch about
y — so the robot walks in the x–z plane like the research bipeds RABBIT and MABEL. Each leg is a thigh and a shank
(the shank's rounded end is the foot); hip and knee of each leg are torque-controlled motors behind
:class:`sim.motor.MotorModel`. The interface mirrors Gymnasium's ``BipedalWalker-v3``.

Observation (24 × float32; order, names and units are ``sim.tasks.biped.BIPED_OBS_FIELDS``):

    ====  ====================  ========  ===============  ==============================================
    idx   name                  unit      typical range    meaning
    ====  ====================  ========  ===============  ==============================================
    0     hull_pitch            rad       [-1, 1]          IMU pitch, + = nose down
    1     hull_pitch_rate       rad/s     [-5, 5]          IMU gyro
    2     vx                    m/s       [-2, 2]          forward hull velocity (state estimator)
    3     vy                    m/s       [-2, 2]          vertical hull velocity (state estimator)
    4-8   hip_left angle/speed, knee_left angle/speed, contact_left   rad, rad/s, 0/1
    9-13  the same for the right leg
    14-23 lidar_0..9            fraction  [0, 1]           range / 2.5 m, rays 0..1.5 rad below horizontal
    ====  ====================  ========  ===============  ==============================================

Joint angles: hip + = thigh swung forward; knee 0 = straight, − = flexed.

Action: 4 floats in [-1, 1] (hip_left, knee_left, hip_right, knee_right) → torque = a · limit (30 N·m) through
the motor model (latency, strength, linear torque–speed curve, damping, Coulomb friction). Out-of-range actions are
clipped; NaN/inf raise ValueError.

Reward (``info["reward_terms"]``), as BipedalWalker:
    progress  = 300 / course_length_m per metre of hull x progress (walking the whole course earns ~300; with
                ``speed_cap_mps`` set, the metres beyond that speed earn nothing)
    posture   = −5 · Δ|hull pitch| (a potential difference, as BipedalWalker's shaping)
    torque    = −0.02 · Σ|a|
    fall      = −100 once the robot falls → ``terminated``: the hull or a thigh touches the ground, |pitch| > 1 rad,
                or the hull sinks below 0.5 m above the ground (crawling and kneeling count as falls)
The weights (posture 5, torque 0.02, fall 100) are fields of :class:`BipedReward` (``reward=`` of the
constructor: an instance, a preset name of ``BIPED_REWARD_PRESETS`` or a dict of fields). Its actuation-cost
terms ``action_rate``, ``torque_sq``, ``power``, ``at_limit`` and ``action_acc`` (``sim/rewards.py``) are 0 and
absent from ``reward_terms`` by default; the ``smooth`` preset that the robust training uses turns them on. The
gait term ``air_time`` (legged_gym's feet air time: ``feet_air_time`` · (swing time − ``air_time_target_s``) at
each foot's touchdown) is also 0 and absent by default; the ``stride`` preset turns it on. The periodic gait term
``gait_clock`` (± ``gait_clock`` per foot and step as its contact matches its phase of the policy's gait clock)
is added by the clock's training wrapper (``policies/gait_clock.py``; ``clock`` preset, ``--gait-clock-hz``),
from :meth:`BipedReward.clock_term` and :meth:`BipedEnv.foot_contacts`. The slip term ``foot_slip``
(humanoid-gym's foot slip: −``feet_slip`` · Σ, over the feet touching the ground, of the horizontal speed of the
foot's lowest point, :func:`foot_slip_mps`) is also 0 and absent by default: a gait that skates on its feet
needs the friction of the floor it trained on. So is ``orientation`` (legged_gym's: −``orientation`` · pitch²
per step), which holds the hull level where the posture term only pays for levelling it, and ``step_length``
(at a touchdown after the other foot's, ``step_length`` · how far ahead of the other foot it landed,
:func:`foot_ahead_m`), which pays alternating steps and not a skip that keeps one foot in front, and
``overspeed`` (−``overspeed`` per m/s of hull speed above ``speed_cap_mps``), which charges the speed the cap only
leaves unpaid, and ``standing`` (−``standing`` per step while the hull moves slower than ``standing_below_mps``),
and ``hip_stop`` (legged_gym's ``dof_pos_limits``, squared: −``hip_stop`` · Σ over the hips of the rad² inside
``hip_stop_margin_rad`` of a joint stop, :func:`hip_stop_sq_rad2`).
Reaching the end of the course also terminates (success); 1600 control steps → ``truncated`` (TimeLimit).
``info["metrics"]`` (the task's, :mod:`sim.task`): ``success`` (walked ``SUCCESS_DISTANCE_M`` = 15 m without a
fall), ``fell``, ``distance_m``.

Privileged state: with ``privileged=True`` (constructor), ``info["privileged"]`` (reset and every step), float32,
for an asymmetric critic — the exact hull state, joint states, link contacts, applied torques and push, then the
episode's physical parameters; the layout is ``env.unwrapped.privileged_fields``
(``sim.tasks.biped.BIPED_PRIVILEGED_FIELDS`` + the parameter table). Off by default: only a privileged critic
reads it (``s2r train --ppo-privileged-critic`` / ``--td3-privileged-critic`` turn it on), and it costs every step.

Start pose: the hull is dropped 2 cm onto nearly straight legs (hips ±0.05 rad). ``start_noise`` (constructor,
in [0, 1]; a training option, ``--env-options '{"start_noise": 1.0}'``) widens that by its share of
``START_NOISE_FULL``: hips further apart, knees bent, a higher drop. 0 (the default) is the v0 start, draw for draw.

Physical parameters: ``BIPED_PARAMS`` (``env.unwrapped.param_space``); apply with
``env.reset(options={"params": {...}})``. 50 Hz control, 250 Hz physics, deterministic.

Engine: ``engine="pybullet"`` (default; ``sim/biped_pybullet.py``, ``p.DIRECT``) or ``"mujoco"``
(``sim/biped_mujoco.py``, MJCF generated from the constants below). Everything above — motor model, sensors,
observation, reward, termination — is this module's and the same in both; docs/mujoco.md compares the physics.
In MuJoCo the substep loop (the ideal motor model and the physics step) and the lidar run in C where that built
(``sim/_mjloop.c``), with the same results to the bit as the Python code here and in ``sim/motor.py``.

Version History (a change that alters seeded episodes — physics, reward, observation, termination, a nominal
parameter — bumps the version of every id it affects, since a bundle's manifest pins its env id; a refactor that
keeps episodes bit-identical does not):

* v0: first release of ``s2r/Biped-v0`` (flat), ``s2r/BipedRough-v0`` (rough) and ``s2r/BipedHardcore-v0``
  (obstacles); the shipped bundle ``deploy/pretrained/biped`` pins ``s2r/Biped-v0``.
  ``engine="mujoco"`` (same ids) added a MuJoCo twin; PyBullet episodes stayed bit-identical.
  A fix, no bump: in PyBullet, ``reset(seed=s)`` of a reused env reported the previous episode's last contacts in
  its first observation; it now gives a fresh env's episode ``s`` (flat ground; the rough grounds still drift in
  the last bits, ``tests/sim/test_envs.py``). A fresh env's episodes are unchanged.
  A fix, no bump: with ``engine="mujoco"`` the terrain heightfield (rough, hardcore, any ``terrain_roughness``)
  was left out of the collision mid-phase, so the robot fell through it; it collides now (docs/mujoco.md).
  Flat-ground and PyBullet episodes are unchanged.
  A fix, no bump: in PyBullet, contacts on the edges between the heightfield's triangles held a sliding foot back
  (ghost collisions; even a flat heightfield tripped policies that walk on the plane). The heightfield corrects
  them now (``GEOM_CONCAVE_INTERNAL_EDGE``). Episodes on a heightfield (rough, hardcore, any
  ``terrain_roughness`` > 0) change; flat-ground episodes are unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import gymnasium as gym
import numpy as np

from sim.engines import DEFAULT_ENGINE, check_engine
from sim.errors import UserError
from sim.motor import MotorModel, MotorParams
from sim.params import ParamSpace, PhysParam, motor_params, motor_params_from, param_fields, param_vector
from sim.rewards import ActuationWeights, actuation_terms, reward_weights
from sim.robots import BIPED_SPEC
from sim.sensors import DelayLine, Encoder, child_rng, split_delay, spurious_returns
from sim.spec import SensorFrame
from sim.tasks.biped import BIPED_PRIVILEGED_FIELDS, biped_obs_from_readings

PHYSICS_HZ = 250.0
SUBSTEPS = int(round(PHYSICS_HZ / BIPED_SPEC.control_hz))

# geometry (m) and masses (kg) of the nominal robot
HULL_HALF_EXTENTS_M = (0.20, 0.10, 0.06)
HULL_MASS_KG = 6.0
THIGH_LENGTH_M, THIGH_RADIUS_M, THIGH_MASS_KG = 0.36, 0.035, 1.2
SHANK_LENGTH_M, SHANK_RADIUS_M, SHANK_MASS_KG = 0.36, 0.03, 0.6
WALKING_MASS_KG = HULL_MASS_KG + 2 * (THIGH_MASS_KG + SHANK_MASS_KG)  # moved along the ground (cost of transport)
LEG_Y_OFFSET_M = 0.09  # legs sit beside the lidar plane (y = 0) so rays never hit them
BOOM_LINK_MASS_KG = 0.05
STAND_HEIGHT_M = HULL_HALF_EXTENTS_M[2] + THIGH_LENGTH_M + SHANK_LENGTH_M + SHANK_RADIUS_M

COURSE_LENGTH_M = 20.0
START_X_M = 0.0
PITCH_LIMIT_RAD = 1.0
# below this hull height above the local ground the robot has collapsed (standing: ~0.83 m); together with the
# thigh-contact rule it rules out crawling and knee-scooting gaits, which a real boom biped cannot survive
MIN_HULL_HEIGHT_M = 0.5
PROGRESS_REWARD_PER_M = 300.0 / COURSE_LENGTH_M
FALL_REWARD = -100.0
SUCCESS_DISTANCE_M = 15.0  # task success (info["metrics"]["success"]): walked this far without a fall, m
PUSH_DURATION_S = 0.1  # each random push lasts this long
TERRAINS = ("flat", "rough", "obstacles")

# link indices of the multibody
X_SLIDER, Z_SLIDER, HULL, THIGH_L, SHANK_L, THIGH_R, SHANK_R = range(7)
MOTOR_JOINTS = (THIGH_L, SHANK_L, THIGH_R, SHANK_R)  # joint i drives link i
HIP_MOTORS = (0, 2)  # the hips' indices in MOTOR_JOINTS
# the widest start randomization (start_noise = 1): hips ± rad, knees bent up to rad, extra drop height up to m
START_NOISE_FULL = (0.3, 0.4, 0.04)
FOOT_LINKS = (SHANK_L, SHANK_R)

BIPED_PARAMS = ParamSpace(
    "biped",
    (
        PhysParam("ground_friction", "1", 1.0, 0.05, 2.0, "lateral friction coefficient of the ground and feet"),
        PhysParam("hull_mass_scale", "x", 1.0, 0.5, 2.0, f"scale on the hull mass ({HULL_MASS_KG} kg)", True),
        PhysParam("leg_mass_scale", "x", 1.0, 0.5, 2.0, "scale on thigh and shank masses", True),
        *motor_params(),
        PhysParam("imu_noise", "rad", 0.0, 0.0, 0.2, "std of IMU pitch noise (pitch-rate noise is 10x in rad/s)"),
        PhysParam("velocity_noise", "m/s", 0.0, 0.0, 0.5, "std of the velocity estimate noise"),
        PhysParam("lidar_noise", "m", 0.0, 0.0, 0.5, "std of lidar range noise"),
        PhysParam("lidar_dropout", "1", 0.0, 0.0, 0.9, "probability that a ray returns max range"),
        PhysParam("terrain_roughness", "m", 0.0, 0.0, 0.15, "extra bump amplitude added to any terrain"),
        PhysParam("lidar_spurious", "1", 0.0, 0.0, 0.5,
                  "probability that a ray returns a spurious short range (uniform below the true one)"),
        PhysParam("push_force", "N", 0.0, 0.0, 400.0,
                  f"horizontal push on the hull, {PUSH_DURATION_S} s long, forward or backward at random"),
        PhysParam("push_interval", "s", 3.0, 0.5, 30.0, "mean time between pushes (Poisson; the first after 1 s)"),
    ),
)


@dataclass(frozen=True)
class BipedReward(ActuationWeights):
    """Reward weights of the biped's task (module docstring, Reward; the actuation terms: ``sim.rewards``).

    The defaults are the v0 reward, bit for bit; ``BIPED_REWARD_PRESETS`` names the training variants."""

    posture: float = 5.0  # reward per rad of decrease of |hull pitch| (a potential difference, as BipedalWalker)
    torque_abs: float = 0.02  # reward lost per unit of Σ |a| per control step (a: normalized command)
    fall: float = -FALL_REWARD  # reward lost once, at a fall
    # gait (legged_gym's feet_air_time): at each touchdown, feet_air_time · (swing time − air_time_target_s);
    # a short, shuffling step costs, a long stride pays: it sets the stride frequency (0: off, the v0 reward)
    feet_air_time: float = 0.0  # reward per s of swing beyond the target, paid at touchdown
    air_time_target_s: float = 0.3  # s of swing that earns nothing; shorter swings cost
    # periodic gait (Siekmann et al. 2021), with the policy's gait clock (policies/gait_clock.py, which adds it):
    # per foot and step, +gait_clock if its contact matches its phase of the clock, −gait_clock if not. The left
    # foot's stance is the first stance_fraction of each cycle, the right foot's half a cycle later.
    gait_clock: float = 0.0  # reward per foot per control step, matched (+) or not (−)
    stance_fraction: float = 0.6  # share of a gait cycle each foot is on the ground (> 0.5: double support)
    # progress pays for hull speed up to this cap (m/s) and nothing beyond it, so the gait need not run at the
    # edge of its speed (legged_gym's robots track a commanded velocity instead of walking as fast as they can);
    # 0: no cap
    speed_cap_mps: float = 0.0
    # speed beyond the cap charged, not only unpaid (legged_gym tracks a commanded velocity): per control step,
    # reward lost per m/s of hull speed above speed_cap_mps. A gait that runs past the cap also steps faster and
    # harder than it needs to (0: off; needs a cap)
    overspeed: float = 0.0
    # foot slip (humanoid-gym's foot_slip): per control step, reward lost per m/s of horizontal speed of a foot's
    # lowest point while it touches the ground, summed over the feet (0: off, the v0 reward)
    feet_slip: float = 0.0
    # posture held, not only restored (legged_gym's orientation): reward lost per rad² of hull pitch per control
    # step; the posture term above pays only changes of |pitch|, so a gait may lean 50° for ever (0: off)
    orientation: float = 0.0
    # alternating steps: at a foot's touchdown after the other foot's, reward per m that it lands ahead of the other
    # foot. A walk earns about its distance; a skip or gallop, one foot always in front, earns nothing over a cycle,
    # and a foot tapping in place earns once (0: off)
    step_length: float = 0.0
    # standing still charged (a deterministic policy can hold a stance that an exploring one falls out of): per
    # control step, reward lost while the hull's forward speed is below standing_below_mps (0: off)
    standing: float = 0.0
    standing_below_mps: float = 0.1  # hull speed, m/s, under which a step counts as standing (not a weight)
    # hips kept off their joint stops (legged_gym's dof_pos_limits, squared so that it is smooth): per control step,
    # reward lost per rad² that a hip is inside hip_stop_margin_rad of a stop, summed over the hips. Under actuation
    # latency a swing that overshoots to the stop leaves the late command nothing to act on (0: off)
    hip_stop: float = 0.0
    hip_stop_margin_rad: float = 0.3  # rad short of each hip stop where the charge starts (not a weight)

    @property
    def gait_on(self) -> bool:
        """Whether a touchdown term (air time, step length) is weighted (the env tracks swing times only then)."""
        return self.feet_air_time > 0 or self.step_length > 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.stance_fraction < 1.0:
            raise UserError(f"reward weight 'stance_fraction' must be in (0, 1), got {self.stance_fraction!r}")
        if not self.hip_stop_margin_rad >= 0:
            raise UserError(f"reward weight 'hip_stop_margin_rad' must be >= 0 rad, got {self.hip_stop_margin_rad!r}")
        if self.overspeed > 0 and not self.speed_cap_mps > 0:
            raise UserError("reward weight 'overspeed' charges speed above 'speed_cap_mps': set a speed cap > 0 too")

    def clock_term(self, phase: float, contacts: tuple[bool, bool]) -> float:
        """The periodic gait term at clock phase ``phase`` (cycles, [0, 1)) for the (left, right) foot contacts."""
        if not self.gait_clock:
            return 0.0
        total = 0.0
        for offset, touching in zip((0.0, 0.5), contacts, strict=True):
            stance = (phase + offset) % 1.0 < self.stance_fraction
            total += self.gait_clock if stance == bool(touching) else -self.gait_clock
        return total


BIPED_REWARD_PRESETS: dict[str, BipedReward] = {
    "default": BipedReward(),
    # smooth, deployable torques (issue #20): at ~1 m/s the progress term pays ~0.3 per step; a bang-bang gait
    # (|Δa| ~ 1 on every motor, all at the limit) would lose more than that, a smooth one a few hundredths
    "smooth": BipedReward(action_rate=0.01, torque_sq=0.01, power_per_w=1e-4, at_limit=0.02),
    # smooth, plus a stride of ≥ 0.3 s swing per foot: a walking frequency whose torque power stays below 5 Hz
    "stride": BipedReward(action_rate=0.01, torque_sq=0.01, power_per_w=1e-4, at_limit=0.02, feet_air_time=1.0),
    # smooth, plus a gait set by the policy's clock (s2r train --gait-clock-hz): ±0.05 per foot and step is about
    # a third of what walking at ~1 m/s earns per step
    "clock": BipedReward(action_rate=0.01, torque_sq=0.01, power_per_w=1e-4, at_limit=0.02, gait_clock=0.05),
}


class BipedState(NamedTuple):
    """Noise-free physics state after a reset or a control step (SI units)."""

    x: float  # hull position along the course, m
    z: float  # hull height, m
    pitch: float  # rad, + = nose down
    vx: float  # m/s
    vz: float  # m/s
    pitch_rate: float  # rad/s
    q: list[float]  # motor joint angles, rad (order of MOTOR_JOINTS)
    dq: list[float]  # motor joint speeds, rad/s
    contact_links: set[int]  # robot links touching the ground


def hip_stop_sq_rad2(q_rad: list[float], margin_rad: float) -> float:
    """Σ over the hips of the square of how far (rad) each hip angle in ``q_rad`` (order of MOTOR_JOINTS) is
    inside ``margin_rad`` of its joint stop (BIPED_SPEC's limits): 0 away from the stops (the hip_stop term)."""
    total = 0.0
    for i in HIP_MOTORS:
        m = BIPED_SPEC.action.motors[i]
        inside = max(m.joint_low_rad + margin_rad - q_rad[i], q_rad[i] - (m.joint_high_rad - margin_rad), 0.0)
        total += inside * inside
    return total


def foot_slip_mps(s: BipedState, leg: int) -> float:
    """Horizontal speed (m/s, + = forward) of the lowest point of foot ``leg`` (0 left, 1 right) in state ``s``:
    the speed it slides at while it touches the ground (0 when it rolls or stands). Planar kinematics of the
    constants above: the hip below the hull centre, thigh and shank at absolute angles φ = hip − pitch and
    φ + knee from the downward vertical, the shank's tip a sphere of ``SHANK_RADIUS_M``."""
    hip, knee, dhip, dknee = s.q[2 * leg], s.q[2 * leg + 1], s.dq[2 * leg], s.dq[2 * leg + 1]
    phi_t, dphi_t = hip - s.pitch, dhip - s.pitch_rate
    phi_s, dphi_s = phi_t + knee, dphi_t + dknee
    return (
        s.vx
        - HULL_HALF_EXTENTS_M[2] * math.cos(s.pitch) * s.pitch_rate
        + THIGH_LENGTH_M * math.cos(phi_t) * dphi_t
        + (SHANK_LENGTH_M * math.cos(phi_s) + SHANK_RADIUS_M) * dphi_s
    )


def foot_ahead_m(s: BipedState, leg: int) -> float:
    """Horizontal position (m, + = forward) of the lowest point of foot ``leg`` (0 left, 1 right) relative to the
    hull centre, in state ``s``: the planar kinematics of :func:`foot_slip_mps`."""
    phi_t = s.q[2 * leg] - s.pitch
    phi_s = phi_t + s.q[2 * leg + 1]
    return -HULL_HALF_EXTENTS_M[2] * math.sin(s.pitch) + THIGH_LENGTH_M * math.sin(phi_t) + SHANK_LENGTH_M * math.sin(phi_s)


class Readings(NamedTuple):
    """One control period's raw sensor readings (SI units, with noise; floats or float arrays), before they are
    packed into a :class:`SensorFrame` (the arguments of ``sim.tasks.biped.biped_obs_from_readings``)."""

    pitch_rad: float
    pitch_rate_rad_s: float
    vel_mps: list[float] | np.ndarray  # (vx, vz)
    q_rad: list[float] | np.ndarray  # motor joint angles, order of MOTOR_JOINTS
    dq_rad_s: list[float] | np.ndarray
    contacts: tuple[float, float]  # left, right foot: 0/1
    lidar_m: list[float] | np.ndarray


def _frame_of(r: Readings) -> SensorFrame:
    f32 = np.float32
    return SensorFrame(
        joint_pos_rad=np.array(r.q_rad, dtype=f32),
        joint_vel_rad_s=np.array(r.dq_rad_s, dtype=f32),
        imu_pitch_rad=float(r.pitch_rad),
        imu_pitch_rate_rad_s=float(r.pitch_rate_rad_s),
        vel_mps=np.array(r.vel_mps, dtype=f32),
        contacts=np.array(r.contacts, dtype=f32),
        lidar_m=np.array(r.lidar_m, dtype=f32),
    )


class BipedPlant(Protocol):
    """The engine-specific half of the biped (``sim/biped_pybullet.py``): what :class:`BipedEnv` asks of it."""

    def set_ground(self, heights: np.ndarray | None, cell_m: float, friction: float) -> None:
        """Flat plane (``heights`` None) or a heightfield of ``heights`` (m) every ``cell_m`` along x from −3 m."""

    def set_mass_scales(self, hull_scale: float, leg_scale: float) -> None:
        """Scale the hull's and the legs' masses and inertias from their nominal values."""

    def set_substep(self, dt_s: float) -> None:
        """Physics time step (s) of the coming substeps."""

    def reset_joints(self, q0: list[float]) -> None:
        """Every joint (boom x m, boom z m, pitch rad, then the motors rad) at ``q0``, at rest."""

    def motor_speeds(self) -> list[float]:
        """Motor joint speeds (rad/s), order of ``MOTOR_JOINTS``."""
        ...

    def substep(self, torques_nm: list[float]) -> None:
        """Apply the motor torques (N·m) and advance one physics substep."""

    def motor_substeps(self, motor: MotorModel, joint_vel: list[float], n: int) -> None:
        """``n`` substeps of the motor model and the physics (:func:`sim.motor.run_substeps` or its compiled
        twin): ``joint_vel`` are the motor joint speeds now (rad/s)."""

    def push_hull(self, force_x_n: float) -> None:
        """Apply a horizontal force (N, + = forward) at the hull's centre of mass during the next substep (the env
        calls it before every substep while pushes are on, with 0 N between pushes)."""

    def read_state(self) -> BipedState:
        """Noise-free state now, with the robot links touching the ground."""
        ...

    def lidar(self, x: float, z: float) -> list[float]:
        """Ranges (m) of the lidar rays from (x, 0, z) against the ground; max range on a miss."""
        ...

    def render(self) -> np.ndarray:
        """A 400x300 RGB picture following the hull."""
        ...

    def close(self) -> None:
        """Free the engine's resources."""


def make_plant(engine: str, course_length_m: float = COURSE_LENGTH_M) -> BipedPlant:
    """The biped in ``engine`` (one of ``sim.engines.ENGINES``) on a course of ``course_length_m``."""
    if check_engine(engine) == "mujoco":
        from sim.biped_mujoco import MujocoBiped

        return MujocoBiped(course_length_m)
    from sim.biped_pybullet import BulletBiped

    return BulletBiped()


class BipedEnv(gym.Env):
    """Planar boom-mounted biped with 4 torque motors, encoders, IMU and a 10-ray lidar (see module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(BIPED_SPEC.control_hz)}
    robot_spec = BIPED_SPEC
    param_space = BIPED_PARAMS
    privileged_fields = BIPED_PRIVILEGED_FIELDS + param_fields(BIPED_PARAMS)  # info["privileged"]'s layout

    def __init__(
        self,
        terrain: str = "flat",
        render_mode: str | None = None,
        course_length_m: float = COURSE_LENGTH_M,
        engine: str = DEFAULT_ENGINE,
        reward: BipedReward | str | dict[str, float] | None = None,
        privileged: bool = False,
        start_noise: float = 0.0,
    ):
        if terrain not in TERRAINS:
            raise ValueError(f"unknown terrain '{terrain}'; use one of {', '.join(TERRAINS)}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        check_engine(engine)
        self.terrain = terrain
        self.render_mode = render_mode
        self.privileged = bool(privileged)  # report info["privileged"] (an asymmetric critic's input)
        if isinstance(start_noise, bool) or not isinstance(start_noise, (int, float)) or not 0.0 <= start_noise <= 1.0:
            raise UserError(f"start_noise must be in [0, 1] (a share of the widest start randomization), got {start_noise!r}")
        # the start pose's randomization (legged_gym's reset_dofs), a share of START_NOISE_FULL; 0: the v0 start.
        # A training option: a policy that met only the one start can learn its first steps as a fixed motor program
        self.start_noise = float(start_noise)
        # reward weights: a BipedReward, a preset name of BIPED_REWARD_PRESETS, a JSON file or a dict of fields
        self.reward_weights = reward_weights(BipedReward, reward, BIPED_REWARD_PRESETS)
        self._actuation_on = self.reward_weights.actuation_on
        self._gait_on = self.reward_weights.gait_on
        self._slip_on = self.reward_weights.feet_slip > 0
        self._orientation_on = self.reward_weights.orientation > 0
        self._overspeed_on = self.reward_weights.overspeed > 0
        self._standing_on = self.reward_weights.standing > 0
        self._hip_stop_on = self.reward_weights.hip_stop > 0
        self._air_s = [0.0, 0.0]  # swing time of each foot so far, s (the air-time term; FOOT_LINKS order)
        self._last_touchdown = -1  # the foot that touched down last (the step-length term), -1: none yet
        self.course_length_m = float(course_length_m)
        n_obs = BIPED_SPEC.obs_dim
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(n_obs,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(BIPED_SPEC.action.n,), dtype=np.float32)

        self._plant = make_plant(engine, self.course_length_m)
        self.engine = engine
        self._heights: np.ndarray | None = None  # terrain heights (m) on the 0.1 m grid; None on the flat plane
        self._clearance_ground: list[float] = []  # see _ground_height; filled with the heightfield
        self._jittered = False  # whether control jitter changed the physics step since the last reset
        self._motor = MotorModel(BIPED_SPEC.action, 1.0 / PHYSICS_HZ, SUBSTEPS)
        # sensor/disturbance effects of the episode (None / -1 when off: see _setup_effects)
        self._encoder: Encoder | None = None
        self._delay: DelayLine[SensorFrame] | None = None
        self._capture_substep = -1  # substep after which a delayed reading is taken (-1: at the period's end)
        self._fx_rng: np.random.Generator | None = None
        self._push_force_n = 0.0  # force of the push in progress, N (+ = forward)
        self._next_push_step = -1
        self._push_left = 0  # control steps left in the push in progress
        self._steps = 0
        self._slow_loop = False  # whether a substep needs more than torques and a physics step
        self._sensor_effects = False  # whether a reading needs more than the true values (encoders, noise...)
        self._limits_nm = [float(v) for v in BIPED_SPEC.action.limits_nm]
        self.params = BIPED_PARAMS.nominal()
        self._frame: SensorFrame | None = None  # the last observation's frame (None: not built yet, see _observe)
        self._last_readings: Readings | None = None  # the readings the last observation was built from
        self._state: BipedState | None = None  # physics state read at the end of the last reset or step

    # ------------------------------------------------------------------------------------------ model
    def _heightfield(self, roughness_m: float) -> tuple[np.ndarray, float]:
        """Terrain heights (m) on a grid along x, drawn from ``self.np_random``; returns (heights, cell_m)."""
        cell_m = 0.1
        n_rows = int((self.course_length_m + 6.0) / cell_m)
        x = np.arange(n_rows) * cell_m - 3.0
        h = np.zeros(n_rows)
        rng = self.np_random
        start = x > 1.0  # keep the first metre flat for a clean start
        if self.terrain == "rough":
            roughness_m = roughness_m + 0.04
        if roughness_m > 0:
            bumps = rng.normal(0.0, 1.0, n_rows)
            kernel = np.ones(5) / 5.0
            h += np.convolve(bumps, kernel, mode="same") * roughness_m * start
        if self.terrain == "obstacles":
            pos = 2.0
            while pos < self.course_length_m:
                kind = rng.integers(3)
                idx = (x >= pos) & (x < pos + {0: 0.3, 1: 3.0, 2: 0.4}[int(kind)])
                if kind == 0:  # stump
                    h[idx] += rng.uniform(0.05, 0.15)
                elif kind == 1:  # step up (terrace)
                    h[x >= pos] += rng.uniform(0.03, 0.08) * rng.choice([-1.0, 1.0])
                else:  # pit
                    h[idx] -= rng.uniform(0.1, 0.2)
                pos += rng.uniform(2.0, 4.0)
        return h, cell_m

    def _make_ground(self, friction: float, roughness_m: float) -> None:
        """Flat plane, or a fresh heightfield per episode (drawn from ``self.np_random``)."""
        if self.terrain == "flat" and roughness_m == 0.0:
            self._heights = None
            self._plant.set_ground(None, 0.1, friction)
            return
        h, cell_m = self._heightfield(roughness_m)
        self._plant.set_ground(h, cell_m, friction)
        self._heights = h
        # highest ground (m, at least 0) within ±3 cells of each cell, for the per-step fall test
        window_max = np.lib.stride_tricks.sliding_window_view(np.pad(h, 3, constant_values=-np.inf), 7).max(axis=1)
        self._clearance_ground = [max(m, 0.0) for m in window_max.tolist()]

    # ------------------------------------------------------------------------------------------- api
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        self.params = BIPED_PARAMS.validate(options.get("params"))
        P = self.params
        self._make_ground(P["ground_friction"], P["terrain_roughness"])
        self._plant.set_mass_scales(P["hull_mass_scale"], P["leg_mass_scale"])
        if self._jittered:  # control jitter changed the physics step during the last episode
            self._plant.set_substep(1.0 / PHYSICS_HZ)
            self._jittered = False
        self._motor.reset(self._motor_params(P))
        self._setup_effects(P)
        rng = self.np_random
        hip0 = rng.uniform(-0.05, 0.05, 2)
        knee0, drop_m = [-0.05, -0.05], 0.02
        if self.start_noise > 0:  # drawn after the v0 start's draws, so that 0 leaves every episode as it was
            hip_rad, knee_rad, extra_drop_m = (self.start_noise * x for x in START_NOISE_FULL)
            hip0 = hip0 + rng.uniform(-hip_rad, hip_rad, 2)
            knee0 = (-0.05 - rng.uniform(0.0, knee_rad, 2)).tolist()
            drop_m += rng.uniform(0.0, extra_drop_m)
        q0 = [START_X_M, STAND_HEIGHT_M + drop_m + self._ground_height(START_X_M), 0.0,
              hip0[0], knee0[0], hip0[1], knee0[1]]  # fmt: skip
        self._plant.reset_joints(q0)
        self._encoder_bias = P["encoder_bias"]
        self._state = state = self._plant.read_state()
        self._x0 = self._last_x = state.x
        self._prev_shaping = self._shaping(state)
        self._prev_a_norm = [0.0] * 4  # the last command's normalized action (the action_rate term)
        self._prev2_a_norm = [0.0] * 4  # the one before it (the action_acc term)
        self._air_s = [0.0, 0.0]
        self._last_touchdown = -1
        obs = self._observe(state)
        info = {"params": dict(self.params), "distance_m": 0.0}
        self._param_vec: np.ndarray | None = None  # the privileged state's tail: made when first asked
        if self.privileged:
            info["privileged"] = self._privileged(state)
        return obs, info

    def step(self, action: np.ndarray):
        return self._advance(BIPED_SPEC.action.torque_list(action))

    def step_torque(self, torque_nm: np.ndarray):
        """Advance one control period with motor torque commands in N·m (clamped by the motor model)."""
        tau_cmd = np.asarray(torque_nm, dtype=np.float64).reshape(-1).tolist()
        if len(tau_cmd) != 4 or not all(map(math.isfinite, tau_cmd)):
            raise ValueError(f"torque command must be 4 finite values in N·m, got {np.asarray(torque_nm).tolist()}")
        return self._advance(tau_cmd)

    def _advance(self, tau_cmd: list[float]):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        P = self.params
        motor = self._motor
        motor.command(tau_cmd)
        a_norm = [-1.0 if (a := t / lim) < -1.0 else (1.0 if a > 1.0 else a)  # the command, normalized, clipped
                  for t, lim in zip(tau_cmd, self._limits_nm, strict=True)]  # fmt: skip
        if P["control_jitter"] > 0:
            period = float(np.clip(self.np_random.normal(1.0 / BIPED_SPEC.control_hz, P["control_jitter"]), 0.01, 0.03))
            self._plant.set_substep(period / SUBSTEPS)
            self._jittered = True
        # the joint speeds for the first substep are those read at the end of the last step: nothing moved since
        joint_vel = self._state.dq
        if self._slow_loop:
            captured = self._substeps_with_effects(joint_vel)
        else:
            self._plant.motor_substeps(motor, joint_vel, SUBSTEPS)
            captured = None
        self._state = state = self._plant.read_state()
        x, links = state.x, state.contact_links
        shaping = self._shaping(state)
        moved_m = x - self._last_x
        cap_m = self.reward_weights.speed_cap_mps / BIPED_SPEC.control_hz
        progress = PROGRESS_REWARD_PER_M * (min(moved_m, cap_m) if cap_m > 0 else moved_m)
        self._last_x = x
        fell = (
            HULL in links
            or THIGH_L in links
            or THIGH_R in links
            or abs(state.pitch) > PITCH_LIMIT_RAD
            or state.z - self._ground_height(x) < MIN_HULL_HEIGHT_M
        )
        terms = {
            "progress": progress,
            # the shaping potential holds posture and the uncapped progress; report them apart
            "posture": shaping - self._prev_shaping - PROGRESS_REWARD_PER_M * moved_m,
            "torque": -self.reward_weights.torque_abs * sum(map(abs, a_norm)),
            "fall": -self.reward_weights.fall if fell else 0.0,
        }
        reward = terms["progress"] + terms["posture"] + terms["torque"] + terms["fall"]
        if self._actuation_on:  # off by default: the v0 reward and info, untouched
            extra = actuation_terms(self.reward_weights, a_norm, self._prev_a_norm, motor.last_applied_nm, state.dq,
                                    self._prev2_a_norm)  # fmt: skip
            terms.update(extra)
            reward += sum(extra.values())
            self._prev2_a_norm, self._prev_a_norm = self._prev_a_norm, a_norm
        if self._gait_on:
            if self.reward_weights.step_length > 0:  # before the air-time term ends the swings it reads
                terms["step_length"] = self._step_length_term(state)
                reward += terms["step_length"]
            air = self._air_time_term(links)
            if self.reward_weights.feet_air_time > 0:
                terms["air_time"] = air
                reward += air
        if self._slip_on:
            slip = sum(abs(foot_slip_mps(state, i)) for i, foot in enumerate(FOOT_LINKS) if foot in links)
            terms["foot_slip"] = -self.reward_weights.feet_slip * slip
            reward += terms["foot_slip"]
        if self._orientation_on:
            terms["orientation"] = -self.reward_weights.orientation * state.pitch**2
            reward += terms["orientation"]
        if self._standing_on:
            slow = moved_m * BIPED_SPEC.control_hz < self.reward_weights.standing_below_mps
            terms["standing"] = -self.reward_weights.standing if slow else 0.0
            reward += terms["standing"]
        if self._hip_stop_on:
            w = self.reward_weights
            terms["hip_stop"] = -w.hip_stop * hip_stop_sq_rad2(state.q, w.hip_stop_margin_rad)
            reward += terms["hip_stop"]
        if self._overspeed_on:
            excess_mps = max(0.0, moved_m - cap_m) * BIPED_SPEC.control_hz
            terms["overspeed"] = -self.reward_weights.overspeed * excess_mps
            reward += terms["overspeed"]
        self._prev_shaping = shaping
        finished = x - self._x0 >= self.course_length_m
        if captured is None:
            obs = self._observe(state)
        else:  # a reading taken during the period (sensor delay)
            self._frame = self._delayed(captured)
            obs = BIPED_SPEC.build_obs(self._frame)
        info = {
            "reward_terms": terms,
            "params": dict(P),
            "fell": fell,
            "distance_m": x - self._x0,
            "is_success": finished and not fell,
            # the task's metrics (sim.task): success = walked SUCCESS_DISTANCE_M without a fall
            "metrics": {"success": float(x - self._x0 >= SUCCESS_DISTANCE_M and not fell), "fell": float(fell),
                        "distance_m": x - self._x0},  # fmt: skip
            "applied_torque_nm": np.array(motor.last_applied_nm, dtype=np.float32),
            "motor_temp_c": motor.temperature_c,
        }
        if self.privileged:
            info["privileged"] = self._privileged(state)
        return obs, reward, fell or finished, False, info

    def _air_time_term(self, links: set[int]) -> float:
        """The gait term of this step (BipedReward.feet_air_time): paid at each foot's touchdown, for its swing."""
        w, dt_s, total = self.reward_weights, 1.0 / BIPED_SPEC.control_hz, 0.0
        for i, foot in enumerate(FOOT_LINKS):
            if foot in links:
                if self._air_s[i] > 0:  # touchdown after a swing
                    total += w.feet_air_time * (self._air_s[i] - w.air_time_target_s)
                self._air_s[i] = 0.0
            else:
                self._air_s[i] += dt_s
        return total

    def _step_length_term(self, state: BipedState) -> float:
        """The step term of this step (BipedReward.step_length): paid at a foot's touchdown after the other foot's,
        for how far ahead of the other foot it landed (a foot tapping twice in a row earns nothing the second time)."""
        total, links = 0.0, state.contact_links
        for i, foot in enumerate(FOOT_LINKS):
            if foot in links and self._air_s[i] > 0:
                if self._last_touchdown != i:
                    total += foot_ahead_m(state, i) - foot_ahead_m(state, 1 - i)
                self._last_touchdown = i
        return self.reward_weights.step_length * total

    def foot_contacts(self) -> tuple[bool, bool]:
        """Whether the left and right feet touch the ground now (noise-free; the gait clock's reward reads it)."""
        if self._state is None:
            raise RuntimeError("call reset() first")
        links = self._state.contact_links
        return FOOT_LINKS[0] in links, FOOT_LINKS[1] in links

    def sensor_frame(self) -> SensorFrame:
        """Raw readings (SI units, with noise) that the last observation was built from."""
        if self._frame is None:
            if self._last_readings is None:
                raise RuntimeError("call reset() first")
            self._frame = _frame_of(self._last_readings)
        return self._frame

    # -------------------------------------------------------------------------------------- effects
    def _motor_params(self, P: dict[str, float]) -> MotorParams:
        """The motor parameters of table ``P`` (the last episode's object when unchanged: resets stay cheap)."""
        kwargs = motor_params_from(P)
        if kwargs != getattr(self, "_motor_kwargs", None):
            self._motor_kwargs, self._motor_params_obj = kwargs, MotorParams(**kwargs)
        return self._motor_params_obj

    def _setup_effects(self, P: dict[str, float]) -> None:
        """Sensor and disturbance effects of the episode; all off (and no draws) at their nominal values."""
        self._encoder = Encoder(P["encoder_resolution"], BIPED_SPEC.control_period_s) if P["encoder_resolution"] else None
        periods, substeps = split_delay(P["sensor_delay"], BIPED_SPEC.control_period_s, SUBSTEPS)
        self._delay = DelayLine(periods) if periods else None
        self._capture_substep = SUBSTEPS - 1 - substeps if substeps else -1
        stochastic = P["lidar_spurious"] > 0 or P["push_force"] > 0
        self._fx_rng = child_rng(self.np_random) if stochastic else None  # np_random itself does not advance
        self._push_force_n, self._push_left, self._steps = 0.0, 0, 0
        self._next_push_step = self._draw_push_gap(1.0) if P["push_force"] > 0 else -1
        self._slow_loop = self._capture_substep >= 0 or P["push_force"] > 0
        self._sensor_effects = self._encoder is not None or any(
            P[k] > 0 for k in ("encoder_noise", "imu_noise", "velocity_noise", "lidar_noise", "lidar_dropout", "lidar_spurious")
        )  # fmt: skip

    def _draw_push_gap(self, after_s: float) -> int:
        assert self._fx_rng is not None
        gap_s = after_s + float(self._fx_rng.exponential(self.params["push_interval"]))
        return self._steps + max(1, int(round(gap_s * BIPED_SPEC.control_hz)))

    def _substeps_with_effects(self, joint_vel: list[float]) -> SensorFrame | None:
        """The substep loop with a push and/or a mid-period sensor reading; returns that reading (or None)."""
        if self._next_push_step >= 0:
            if self._push_left == 0 and self._steps >= self._next_push_step:
                assert self._fx_rng is not None
                direction = 1.0 if self._fx_rng.random() < 0.5 else -1.0
                self._push_force_n = direction * self.params["push_force"]
                self._push_left = int(round(PUSH_DURATION_S * BIPED_SPEC.control_hz))
                self._next_push_step = self._draw_push_gap(PUSH_DURATION_S)
            self._steps += 1
        push = self._push_force_n if self._push_left > 0 else 0.0
        self._push_left = max(self._push_left - 1, 0)
        captured, plant, pushes = None, self._plant, self._next_push_step >= 0
        for i in range(SUBSTEPS):
            if i:
                joint_vel = plant.motor_speeds()
            if pushes:
                plant.push_hull(push)  # also 0 N between pushes: an engine may keep an applied force
            plant.substep(self._motor.torque(joint_vel))
            if i == self._capture_substep:
                captured = self._measure(plant.read_state())
        return captured

    def _delayed(self, frame: SensorFrame) -> SensorFrame:
        return frame if self._delay is None else self._delay.push(frame)

    # -------------------------------------------------------------------------------------- internals
    def _privileged(self, s: BipedState) -> np.ndarray:
        """``info["privileged"]`` now (layout: ``privileged_fields``)."""
        if self._param_vec is None:  # the episode's physical parameters, once per episode
            self._param_vec = param_vector(BIPED_PARAMS, self.params)
        links = s.contact_links
        push = self._push_force_n if self._push_left > 0 else 0.0
        return np.concatenate([
            np.array([s.z - self._ground_height(s.x), s.pitch, s.pitch_rate, s.vx, s.vz, *s.q, *s.dq,
                      *(float(link in links) for link in (HULL, THIGH_L, SHANK_L, THIGH_R, SHANK_R)),
                      *self._motor.last_applied_nm, push], dtype=np.float32),
            self._param_vec,
        ])  # fmt: skip

    def _ground_height(self, x: float) -> float:
        """Highest ground (m, at least 0) within ±0.3 m of ``x``: what the hull must clear."""
        if self._heights is None:
            return 0.0
        table = self._clearance_ground  # precomputed per terrain: numpy calls on scalars cost µs per step
        return table[int(min(max((x + 3.0) / 0.1, 0), len(table) - 1))]

    def _shaping(self, state: BipedState) -> float:
        return PROGRESS_REWARD_PER_M * state.x - self.reward_weights.posture * abs(state.pitch)

    def _readings(self, state: BipedState) -> Readings:
        """Sensor readings with the noise of the parameters in force (randomness from ``self.np_random``)."""
        # noise-free readings stay plain floats (numpy costs µs per call on 4-element arrays); the float32
        # conversion of the frame or the observation rounds exactly as the float64 arrays' astype would
        bias = self._encoder_bias
        q: list[float] | np.ndarray = [v + bias for v in state.q]
        dq: list[float] | np.ndarray = state.dq
        pitch, rate = state.pitch, state.pitch_rate
        vel: list[float] | np.ndarray = [state.vx, state.vz]
        # the 10 rays from the hull centre; the scan is levelled (angles below the horizontal)
        lidar: list[float] | np.ndarray = self._plant.lidar(state.x, state.z)
        if self._sensor_effects:
            q, dq, pitch, rate, vel, lidar = self._sensor_effects_on(q, dq, pitch, rate, vel, lidar)
        links = state.contact_links
        return Readings(pitch, rate, vel, q, dq, (float(SHANK_L in links), float(SHANK_R in links)), lidar)

    def _sensor_effects_on(self, q: Any, dq: Any, pitch: float, rate: float, vel: Any,
                           lidar: Any) -> tuple[Any, Any, float, float, Any, Any]:  # fmt: skip
        """The encoders, noise, dropout and spurious returns of the parameters in force on true readings."""
        P, rng = self.params, self.np_random
        if self._encoder is not None:
            q, dq = self._encoder.read(q)
        if P["encoder_noise"] > 0:
            q = np.array(q) + rng.normal(0.0, P["encoder_noise"], 4)
            dq = np.array(dq) + rng.normal(0.0, 10 * P["encoder_noise"], 4)
        if P["imu_noise"] > 0:
            pitch += rng.normal(0.0, P["imu_noise"])
            rate += rng.normal(0.0, 10 * P["imu_noise"])
        if P["velocity_noise"] > 0:
            vel = np.array(vel) + rng.normal(0.0, P["velocity_noise"], 2)
        max_range = BIPED_SPEC.sensors.lidar_max_range_m
        if P["lidar_noise"] > 0:
            lidar = np.clip(np.array(lidar) + rng.normal(0.0, P["lidar_noise"], 10), 0.0, max_range)
        if P["lidar_dropout"] > 0:
            lidar = np.where(rng.random(10) < P["lidar_dropout"], max_range, lidar)
        if self._fx_rng is not None and P["lidar_spurious"] > 0:
            lidar = spurious_returns(np.asarray(lidar), P["lidar_spurious"], self._fx_rng)
        return q, dq, pitch, rate, vel, lidar

    def _measure(self, state: BipedState) -> SensorFrame:
        """The sensor frame of the readings now (:meth:`_readings`)."""
        return _frame_of(self._readings(state))

    def _observe(self, state: BipedState) -> np.ndarray:
        """The observation of the readings now. With a sensor delay it goes through a frame in the delay line;
        without one it is built from the readings directly, and their frame only when :meth:`sensor_frame` asks
        (the same numbers: ``build_obs(sensor_frame())`` is the observation)."""
        readings = self._readings(state)
        if self._delay is not None:
            self._frame = self._delay.push(_frame_of(readings))
            return BIPED_SPEC.build_obs(self._frame)
        self._frame, self._last_readings = None, readings
        return biped_obs_from_readings(*readings)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._plant.render()

    def close(self) -> None:
        if getattr(self, "_plant", None) is not None:
            self._plant.close()
            self._plant = None  # type: ignore[assignment]
