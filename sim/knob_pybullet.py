"""PyBullet side of :class:`sim.knob.KnobEnv`: hand, knob and scenery as bullet bodies, one physics substep,
state and contacts read back from bullet, render. Everything else (motor model, task, observation, reward) is
engine-independent and lives in ``sim/knob.py``; ``sim/knob_mujoco.py`` is the other engine.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np

from sim._bullet import connect_direct, p
from sim.knob import (
    DIST_LENGTH_M,
    DIST_MASS_KG,
    FIN_HALF_THICKNESS_M,
    FIN_RADIUS_M,
    FIN_Z_M,
    HUB_HEIGHT_M,
    HUB_RADIUS_M,
    KNOB_INERTIA_KGM2,
    KNOB_LINK,
    KNOB_MASS_KG,
    MOTOR_JOINTS,
    MOUNT_HEIGHT_M,
    MOUNT_RADIUS_M,
    PHYSICS_HZ,
    PROX_LENGTH_M,
    PROX_MASS_KG,
    PROX_RADIUS_M,
    TIP_LINKS,
    TIP_RADIUS_M,
    KnobState,
    finger_link_inertia,
)
from sim.robots import KNOB_SPEC


def _quat_z(angle_rad: float) -> list[float]:
    return [0.0, 0.0, float(np.sin(angle_rad / 2)), float(np.cos(angle_rad / 2))]


class BulletKnob:
    """Hand and knob in their own ``p.DIRECT`` client (see ``sim.knob.KnobPlant`` for the contract)."""

    def __init__(self) -> None:
        self._bc = connect_direct()
        self._bc.setGravity(0, 0, -9.81)
        self._bc.setPhysicsEngineParameter(fixedTimeStep=1.0 / PHYSICS_HZ, numSolverIterations=10)
        self._hand = self._build_hand()
        self._knob = self._build_knob()
        self._goal_marker = self._build_scenery()
        self._knob_friction_nm = 0.0
        cid = self._bc._client
        # bound pybullet functions: the BulletClient proxy adds a cost to every call in the substep loop
        motor_ids = MOTOR_JOINTS
        self._get_states = functools.partial(p.getJointStates, self._hand, motor_ids, physicsClientId=cid)
        self._set_torques = functools.partial(
            p.setJointMotorControlArray, self._hand, motor_ids, p.TORQUE_CONTROL, physicsClientId=cid
        )
        self._step_sim = functools.partial(p.stepSimulation, physicsClientId=cid)
        self._get_knob_state = functools.partial(p.getJointState, self._knob, KNOB_LINK, physicsClientId=cid)
        self._get_contacts = functools.partial(
            p.getContactPoints, self._hand, self._knob, physicsClientId=cid
        )

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

    # --------------------------------------------------------------------------------------- contract
    def apply_params(self, P: dict[str, float]) -> None:
        """Knob friction, damping and inertia, finger masses and fingertip friction; physics step back to nominal."""
        bc = self._bc
        self.set_substep(1.0 / PHYSICS_HZ, P["knob_friction"])  # first: the knob friction depends on the step
        i_knob = KNOB_INERTIA_KGM2 * P["knob_inertia_scale"]
        bc.changeDynamics(self._knob, KNOB_LINK, localInertiaDiagonal=[i_knob / 2, i_knob / 2, i_knob],
                          jointDamping=P["knob_damping"])  # fmt: skip
        for link in MOTOR_JOINTS:
            mass, inertia = finger_link_inertia(link, P["finger_mass_scale"])
            bc.changeDynamics(self._hand, link, mass=mass, localInertiaDiagonal=inertia,
                              lateralFriction=P["fingertip_friction"])  # fmt: skip

    def set_substep(self, dt_s: float, knob_friction_nm: float | None = None) -> None:
        """Set the physics time step (s) and the knob friction (N·m) that depends on it."""
        if knob_friction_nm is not None:
            self._knob_friction_nm = knob_friction_nm
        self._bc.setPhysicsEngineParameter(fixedTimeStep=dt_s)
        # knob Coulomb friction: a velocity motor holding zero speed with at most the friction torque (implicit,
        # so it sticks without chattering). Bullet turns the torque into an impulse with the time step in force
        # when the motor is set, so it is set again whenever the step changes.
        self._bc.setJointMotorControl2(
            self._knob, KNOB_LINK, p.VELOCITY_CONTROL, targetVelocity=0.0, force=self._knob_friction_nm
        )

    def reset_state(self, knob_angle_rad: float, q0: np.ndarray) -> None:
        """Knob at ``knob_angle_rad`` and the finger joints at ``q0`` (rad), all at rest."""
        self._bc.resetJointState(self._knob, KNOB_LINK, knob_angle_rad, 0.0)
        for j, q in zip(MOTOR_JOINTS, q0, strict=True):
            self._bc.resetJointState(self._hand, j, float(q), 0.0)

    def set_goal_marker(self, goal_rad: float) -> None:
        r = FIN_RADIUS_M + 0.02
        self._bc.resetBasePositionAndOrientation(
            self._goal_marker, [r * np.cos(goal_rad), r * np.sin(goal_rad), 0.002], [0, 0, 0, 1]
        )

    def motor_speeds(self) -> list[float]:
        return [s[1] for s in self._get_states()]

    def substep(self, torques_nm: list[float]) -> None:
        self._set_torques(forces=torques_nm)
        self._step_sim()

    def read_state(self) -> KnobState:
        js = self._get_states()
        q = np.array([s[0] for s in js])
        dq = np.array([s[1] for s in js])
        knob_q, knob_dq = self._get_knob_state()[:2]
        touching = {c[3] for c in self._get_contacts()}
        contacts = np.array([link in touching for link in TIP_LINKS], dtype=np.float32)
        return KnobState(q, dq, float(knob_q), float(knob_dq), contacts)

    def render(self) -> np.ndarray:
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
