"""`s2r/Knob-v0`: two two-joint fingers turn a three-finned valve knob to a target angle (D'Claw style) in PyBullet.

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

Observation (20 × float32; names and units are ``sim.robots.KNOB_OBS_FIELDS``; built from the raw sensor frame
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
Single-goal mode (default): success → ``terminated``. ``continuous_goals=True``: a new target 180° ± 60° away is
drawn after each success and ``info["consecutive_successes"]`` counts them (Dactyl's metric, ADR's signal).
``info["is_success"]`` is True once the episode has reached at least one goal. 400 control steps (8 s at 50 Hz)
→ ``truncated`` (TimeLimit). Other info keys: ``reward_terms``, ``params``, ``fell`` (always False),
``angle_error_rad`` (to the current target) and ``applied_torque_nm`` (motor output in the last substep).

Reward (``info["reward_terms"]``, summed):
    distance = −5 · |angle error| (rad), every step
    near     = +10 once per goal, the first time |angle error| < 0.25 rad
    success  = +50 once per goal, when it is achieved (|angle error| < 0.1 rad for 10 steps)
    torque   = −0.1 · Σ a² (normalized actions)
The bonuses are paid once per goal rather than every step near the goal: a per-step bonus would pay a policy to
hover next to the goal instead of finishing it (success ends the episode, or draws a new, distant target).

Physical parameters: ``KNOB_PARAMS`` (``env.unwrapped.param_space``); apply with
``env.reset(options={"params": {...}})``. Also accepted in ``options``: ``start_angle`` and ``goal_angle`` (rad)
to pin the initial knob angle and the first target (scripted tests, demos). 50 Hz control, 250 Hz physics,
``p.DIRECT`` with a client per env, deterministic for a given seed; ``render_mode="rgb_array"`` is headless.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from typing import Any

import gymnasium as gym
import numpy as np

from sim._bullet import connect_direct, p
from sim.motor import MotorModel, MotorParams
from sim.params import ParamSpace, PhysParam, motor_params, motor_params_from
from sim.robots import KNOB_SPEC
from sim.sensors import DelayLine, Encoder, split_delay
from sim.spec import SensorFrame

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
        raise ValueError(f"reset option '{key}' must be a finite angle in rad, got {options[key]!r}")
    return value


def _quat_z(angle_rad: float) -> list[float]:
    return [0.0, 0.0, float(np.sin(angle_rad / 2)), float(np.cos(angle_rad / 2))]


class KnobEnv(gym.Env):
    """Two 2-joint fingers turning a three-finned knob to a target angle (see module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(KNOB_SPEC.control_hz)}
    robot_spec = KNOB_SPEC
    param_space = KNOB_PARAMS

    def __init__(self, continuous_goals: bool = False, render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.continuous_goals = bool(continuous_goals)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(KNOB_SPEC.obs_dim,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(KNOB_SPEC.action.n,), dtype=np.float32)

        self._bc = connect_direct()
        self._bc.setGravity(0, 0, -9.81)
        self._bc.setPhysicsEngineParameter(fixedTimeStep=1.0 / PHYSICS_HZ, numSolverIterations=10)
        self._hand = self._build_hand()
        self._knob = self._build_knob()
        self._goal_marker = self._build_scenery()
        self._motor = MotorModel(KNOB_SPEC.action, 1.0 / PHYSICS_HZ, SUBSTEPS)
        self._encoder: Encoder | None = None  # sensor effects of the episode (None / -1 when off)
        self._delay: DelayLine[SensorFrame] | None = None
        self._capture_substep = -1
        self._limits_nm = KNOB_SPEC.action.limits_nm
        cid = self._bc._client
        # bound pybullet functions: the BulletClient proxy costs a few µs per call in the substep loop
        self._fast = (
            functools.partial(p.getJointStates, physicsClientId=cid),
            functools.partial(p.setJointMotorControlArray, physicsClientId=cid),
            functools.partial(p.stepSimulation, physicsClientId=cid),
        )
        self._get_knob_state = functools.partial(p.getJointState, self._knob, KNOB_LINK, physicsClientId=cid)
        self._get_contacts = functools.partial(
            p.getContactPoints, self._hand, self._knob, physicsClientId=cid
        )
        self.params = KNOB_PARAMS.nominal()
        self._frame: SensorFrame | None = None
        self._prev_action = np.zeros(4, dtype=np.float32)
        self._goal = 0.0
        self._hold = 0
        self._successes = 0
        self._near_paid = False

    # ------------------------------------------------------------------------------------------ model
    def _build_hand(self) -> int:
        bc = self._bc
        prox_col = bc.createCollisionShape(
            p.GEOM_CAPSULE, radius=PROX_RADIUS_M, height=PROX_LENGTH_M - 2 * PROX_RADIUS_M,
            collisionFramePosition=[0, 0, -PROX_LENGTH_M / 2],
        )  # fmt: skip
        # distal capsule: from the joint down to the fingertip sphere centred DIST_LENGTH_M below it
        dist_col = bc.createCollisionShape(
            p.GEOM_CAPSULE, radius=TIP_RADIUS_M, height=DIST_LENGTH_M - TIP_RADIUS_M,
            collisionFramePosition=[0, 0, -(DIST_LENGTH_M + TIP_RADIUS_M) / 2],
        )  # fmt: skip
        grey, orange = [0.55, 0.55, 0.6, 1], [0.95, 0.55, 0.2, 1]
        prox_vis = bc.createVisualShape(p.GEOM_CAPSULE, radius=PROX_RADIUS_M, length=PROX_LENGTH_M - 2 * PROX_RADIUS_M,
                                        rgbaColor=grey, visualFramePosition=[0, 0, -PROX_LENGTH_M / 2])  # fmt: skip
        dist_vis = bc.createVisualShape(p.GEOM_CAPSULE, radius=TIP_RADIUS_M, length=DIST_LENGTH_M - TIP_RADIUS_M,
                                        rgbaColor=orange, visualFramePosition=[0, 0, -(DIST_LENGTH_M + TIP_RADIUS_M) / 2])  # fmt: skip
        palm_vis = bc.createVisualShape(p.GEOM_BOX, halfExtents=[0.03, MOUNT_RADIUS_M + 0.02, 0.01],
                                        rgbaColor=[0.3, 0.3, 0.35, 1], visualFramePosition=[0, 0, MOUNT_HEIGHT_M + 0.015])  # fmt: skip
        # finger i is finger 0 rotated by i·180° about the knob axis; base axis radial (local y), distal tangential (x)
        mounts = [[0.0, MOUNT_RADIUS_M, MOUNT_HEIGHT_M], [0.0, -MOUNT_RADIUS_M, MOUNT_HEIGHT_M]]
        hand = bc.createMultiBody(
            baseMass=0,
            baseCollisionShapeIndex=-1,
            baseVisualShapeIndex=palm_vis,
            basePosition=[0, 0, 0],
            linkMasses=[PROX_MASS_KG, DIST_MASS_KG] * 2,
            linkCollisionShapeIndices=[prox_col, dist_col] * 2,
            linkVisualShapeIndices=[prox_vis, dist_vis] * 2,
            linkPositions=[mounts[0], [0, 0, -PROX_LENGTH_M], mounts[1], [0, 0, -PROX_LENGTH_M]],
            linkOrientations=[_quat_z(0.0), _quat_z(0.0), _quat_z(np.pi), _quat_z(0.0)],
            linkInertialFramePositions=[[0, 0, -PROX_LENGTH_M / 2], [0, 0, -DIST_LENGTH_M / 2]] * 2,
            linkInertialFrameOrientations=[[0, 0, 0, 1]] * 4,
            linkParentIndices=[0, 1, 0, 3],
            linkJointTypes=[p.JOINT_REVOLUTE] * 4,
            linkJointAxis=[[0, 1, 0], [1, 0, 0]] * 2,
            useMaximalCoordinates=False,
        )
        for j, m in zip(MOTOR_JOINTS, KNOB_SPEC.action.motors, strict=True):
            bc.setJointMotorControl2(hand, j, p.VELOCITY_CONTROL, force=0)  # torque control only
            bc.changeDynamics(hand, j, linearDamping=0, angularDamping=0, jointDamping=0,
                              jointLowerLimit=m.joint_low_rad, jointUpperLimit=m.joint_high_rad)  # fmt: skip
        return hand

    def _build_knob(self) -> int:
        bc = self._bc
        fin_z = (FIN_Z_M[0] + FIN_Z_M[1]) / 2
        fin_half = [
            (FIN_RADIUS_M - HUB_RADIUS_M / 2) / 2,
            FIN_HALF_THICKNESS_M,
            (FIN_Z_M[1] - FIN_Z_M[0]) / 2,
        ]
        fin_r = HUB_RADIUS_M / 2 + fin_half[0]
        angles = [0.0, 2 * np.pi / 3, 4 * np.pi / 3]
        fin_pos = [[fin_r * np.cos(a), fin_r * np.sin(a), fin_z] for a in angles]
        fin_orn = [_quat_z(a) for a in angles]
        hub_pos = [0, 0, HUB_HEIGHT_M / 2]
        col = bc.createCollisionShapeArray(
            shapeTypes=[p.GEOM_CYLINDER] + [p.GEOM_BOX] * 3,
            radii=[HUB_RADIUS_M, 0, 0, 0],
            lengths=[HUB_HEIGHT_M, 0, 0, 0],
            halfExtents=[[0, 0, 0]] + [fin_half] * 3,
            collisionFramePositions=[hub_pos, *fin_pos],
            collisionFrameOrientations=[[0, 0, 0, 1], *fin_orn],
        )
        # fin 0 is red so that the knob's rotation reads in renders
        colors = [[0.2, 0.45, 0.8, 1], [0.85, 0.2, 0.2, 1], [0.2, 0.45, 0.8, 1], [0.2, 0.45, 0.8, 1]]
        vis = bc.createVisualShapeArray(
            shapeTypes=[p.GEOM_CYLINDER] + [p.GEOM_BOX] * 3,
            radii=[HUB_RADIUS_M, 0, 0, 0],
            lengths=[HUB_HEIGHT_M, 0, 0, 0],
            halfExtents=[[0, 0, 0]] + [fin_half] * 3,
            visualFramePositions=[hub_pos, *fin_pos],
            visualFrameOrientations=[[0, 0, 0, 1], *fin_orn],
            rgbaColors=colors,
        )
        knob = bc.createMultiBody(
            baseMass=0,
            baseCollisionShapeIndex=-1,
            baseVisualShapeIndex=-1,
            basePosition=[0, 0, 0],
            linkMasses=[KNOB_MASS_KG],
            linkCollisionShapeIndices=[col],
            linkVisualShapeIndices=[vis],
            linkPositions=[[0, 0, 0]],
            linkOrientations=[[0, 0, 0, 1]],
            linkInertialFramePositions=[[0, 0, 0]],
            linkInertialFrameOrientations=[[0, 0, 0, 1]],
            linkParentIndices=[0],
            linkJointTypes=[p.JOINT_REVOLUTE],
            linkJointAxis=[[0, 0, 1]],
        )
        # bullet multiplies the two bodies' friction coefficients: the fins' 1.0 leaves the fingertips' in charge
        bc.changeDynamics(knob, KNOB_LINK, linearDamping=0, angularDamping=0, lateralFriction=1.0)
        bc.setJointMotorControl2(knob, KNOB_LINK, p.VELOCITY_CONTROL, force=0)
        return knob

    def _build_scenery(self) -> int:
        """A table under the knob and a goal marker (visual only: they never touch the physics)."""
        bc = self._bc
        table = bc.createVisualShape(
            p.GEOM_BOX, halfExtents=[0.2, 0.2, 0.005], rgbaColor=[0.85, 0.85, 0.8, 1]
        )
        bc.createMultiBody(0, -1, table, basePosition=[0, 0, -0.005])
        marker = bc.createVisualShape(p.GEOM_SPHERE, radius=0.008, rgbaColor=[0.1, 0.8, 0.2, 1])
        return bc.createMultiBody(0, -1, marker, basePosition=[FIN_RADIUS_M + 0.02, 0, 0.002])

    def _apply_params(self, P: dict[str, float]) -> None:
        bc = self._bc
        self._set_substep(1.0 / PHYSICS_HZ)  # first: the knob friction below depends on it
        i_knob = KNOB_INERTIA_KGM2 * P["knob_inertia_scale"]
        bc.changeDynamics(self._knob, KNOB_LINK, localInertiaDiagonal=[i_knob / 2, i_knob / 2, i_knob],
                          jointDamping=P["knob_damping"])  # fmt: skip
        s = P["finger_mass_scale"]
        for link in MOTOR_JOINTS:
            is_base = link in (F0_BASE, F1_BASE)
            m, length = (PROX_MASS_KG, PROX_LENGTH_M) if is_base else (DIST_MASS_KG, DIST_LENGTH_M)
            rod = s * m * length**2 / 12  # about the link's centre, across its length
            axial = s * m * PROX_RADIUS_M**2 / 2
            # the armature adds to the joint axis only: y for base joints, x for distal joints
            inertia = [rod, rod + ARMATURE_KGM2, axial] if is_base else [rod + ARMATURE_KGM2, rod, axial]
            bc.changeDynamics(self._hand, link, mass=s * m, localInertiaDiagonal=inertia,
                              lateralFriction=P["fingertip_friction"])  # fmt: skip
        self._motor.reset(self._motor_params(P))
        self._encoder = Encoder(P["encoder_resolution"], KNOB_SPEC.control_period_s) if P["encoder_resolution"] else None
        periods, substeps = split_delay(P["sensor_delay"], KNOB_SPEC.control_period_s, SUBSTEPS)
        self._delay = DelayLine(periods) if periods else None
        self._capture_substep = SUBSTEPS - 1 - substeps if substeps else -1

    def _set_substep(self, dt_s: float) -> None:
        """Set the physics time step (s) and the knob friction that depends on it."""
        self._bc.setPhysicsEngineParameter(fixedTimeStep=dt_s)
        # knob Coulomb friction: a velocity motor holding zero speed with at most the friction torque (implicit,
        # so it sticks without chattering). Bullet turns the torque into an impulse with the time step in force
        # when the motor is set, so it is set again whenever the step changes.
        self._bc.setJointMotorControl2(
            self._knob, KNOB_LINK, p.VELOCITY_CONTROL, targetVelocity=0.0, force=self.params["knob_friction"]
        )

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
        self._bc.resetJointState(self._knob, KNOB_LINK, start, 0.0)
        q0 = np.asarray(HOME_POSE_RAD) + rng.uniform(-0.05, 0.05, 4)
        for j, q in zip(MOTOR_JOINTS, q0, strict=True):
            self._bc.resetJointState(self._hand, j, float(q), 0.0)
        self._set_goal(pinned["goal_angle"] if "goal_angle" in pinned else self._draw_goal(start))
        self._successes = 0
        self._prev_action = np.zeros(4, dtype=np.float32)
        self._frame = self._delayed(self._measure(*self._read_state()))
        obs = KNOB_SPEC.build_obs(self._frame, self._prev_action)
        return obs, {"params": dict(self.params), "is_success": False, "consecutive_successes": 0}

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
        if P["control_jitter"] > 0:
            period = float(
                np.clip(self.np_random.normal(1.0 / KNOB_SPEC.control_hz, P["control_jitter"]), 0.01, 0.03)
            )
            self._set_substep(period / SUBSTEPS)
        get_states, set_torques, step_sim = self._fast
        hand, motor_ids, torque_mode, motor_torque = (
            self._hand,
            MOTOR_JOINTS,
            p.TORQUE_CONTROL,
            self._motor.torque,
        )
        captured, capture_at = None, self._capture_substep
        for i in range(SUBSTEPS):
            set_torques(
                hand, motor_ids, torque_mode, forces=motor_torque([s[1] for s in get_states(hand, motor_ids)])
            )
            step_sim()
            if i == capture_at:  # a sensor delay that is not a whole number of periods: read mid-period
                captured = self._measure(*self._read_state())

        state = self._read_state()
        error = abs(_wrap(self._goal - state[2]))
        terms = {
            "distance": -5.0 * error,
            "near": 0.0,
            "success": 0.0,
            "torque": -0.1 * float(np.dot(a_norm, a_norm)),
        }
        if error < NEAR_TOL_RAD and not self._near_paid:
            terms["near"], self._near_paid = 10.0, True
        self._hold = self._hold + 1 if error < SUCCESS_TOL_RAD else 0
        achieved = self._hold >= HOLD_STEPS
        if achieved:
            terms["success"] = 50.0
            self._successes += 1
            if self.continuous_goals:
                self._set_goal(self._draw_goal(state[2]))
        self._prev_action = a_norm
        self._frame = self._delayed(captured if captured is not None else self._measure(*state))
        obs = KNOB_SPEC.build_obs(self._frame, self._prev_action)
        info = {
            "reward_terms": terms,
            "params": dict(self.params),
            "fell": False,
            "is_success": self._successes > 0,
            "consecutive_successes": self._successes,
            "angle_error_rad": _wrap(self._goal - state[2]),
            "applied_torque_nm": np.asarray(self._motor.last_applied_nm, dtype=np.float32),
            "motor_temp_c": self._motor.temperature_c,
        }
        terminated = achieved and not self.continuous_goals
        return obs, float(sum(terms.values())), terminated, False, info

    def sensor_frame(self) -> SensorFrame:
        """Raw readings (SI units, with noise) that the last observation was built from."""
        if self._frame is None:
            raise RuntimeError("call reset() first")
        return self._frame

    # -------------------------------------------------------------------------------------- internals
    def _draw_goal(self, knob_angle_rad: float) -> float:
        return knob_angle_rad + float(self.np_random.uniform(*GOAL_OFFSET_RAD))

    def _set_goal(self, goal_rad: float) -> None:
        self._goal = goal_rad
        self._hold = 0
        self._near_paid = False
        r = FIN_RADIUS_M + 0.02
        self._bc.resetBasePositionAndOrientation(
            self._goal_marker, [r * np.cos(goal_rad), r * np.sin(goal_rad), 0.002], [0, 0, 0, 1]
        )

    def _read_state(self) -> tuple[np.ndarray, np.ndarray, float, float, np.ndarray]:
        """True joint angles (rad), speeds (rad/s), knob angle (rad) and speed (rad/s), fingertip contacts."""
        js = self._fast[0](self._hand, MOTOR_JOINTS)
        q = np.array([s[0] for s in js])
        dq = np.array([s[1] for s in js])
        knob_q, knob_dq = self._get_knob_state()[:2]
        touching = {c[3] for c in self._get_contacts()}
        contacts = np.array([link in touching for link in TIP_LINKS], dtype=np.float32)
        return q, dq, float(knob_q), float(knob_dq), contacts

    def _motor_params(self, P: dict[str, float]) -> MotorParams:
        """The motor parameters of table ``P`` (the last episode's object when unchanged: resets stay cheap)."""
        kwargs = motor_params_from(P)
        if kwargs != getattr(self, "_motor_kwargs", None):
            self._motor_kwargs, self._motor_params_obj = kwargs, MotorParams(**kwargs)
        return self._motor_params_obj

    def _delayed(self, frame: SensorFrame) -> SensorFrame:
        return frame if self._delay is None else self._delay.push(frame)

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
        bc = self._bc
        view = bc.computeViewMatrix(cameraEyePosition=[0.28, -0.22, 0.32], cameraTargetPosition=[0, 0, 0.05],
                                    cameraUpVector=[0, 0, 1])  # fmt: skip
        proj = bc.computeProjectionMatrixFOV(fov=45, aspect=1.0, nearVal=0.02, farVal=2.0)
        _, _, rgba, _, _ = bc.getCameraImage(320, 320, view, proj, renderer=p.ER_TINY_RENDERER)
        return np.asarray(rgba, dtype=np.uint8).reshape(320, 320, 4)[:, :, :3]

    def close(self) -> None:
        if getattr(self, "_bc", None) is not None:
            with contextlib.suppress(p.error):
                self._bc.disconnect()
            self._bc = None
