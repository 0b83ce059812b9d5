"""PyBullet side of :class:`sim.biped.BipedEnv`: the robot and ground as bullet bodies, one physics substep,
state, contacts and lidar read back from bullet, render. Everything else (motor model, observation, reward,
termination) is engine-independent and lives in ``sim/biped.py``; ``sim/biped_mujoco.py`` is the other engine.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Any

import numpy as np

from sim._bullet import connect_direct, p
from sim.biped import (
    BOOM_LINK_MASS_KG,
    FOOT_LINKS,
    HULL,
    HULL_HALF_EXTENTS_M,
    HULL_MASS_KG,
    LEG_Y_OFFSET_M,
    MOTOR_JOINTS,
    PHYSICS_HZ,
    SHANK_LENGTH_M,
    SHANK_MASS_KG,
    SHANK_RADIUS_M,
    THIGH_LENGTH_M,
    THIGH_MASS_KG,
    THIGH_RADIUS_M,
    X_SLIDER,
    BipedState,
)
from sim.motor import MotorModel, run_substeps
from sim.robots import BIPED_SPEC


class BulletBiped:
    """The biped in its own ``p.DIRECT`` client (see ``sim.biped.BipedPlant`` for the contract)."""

    def __init__(self) -> None:
        self._bc: Any = connect_direct()
        self._bc.setGravity(0, 0, -9.81)
        self._bc.setPhysicsEngineParameter(fixedTimeStep=1.0 / PHYSICS_HZ, numSolverIterations=20)
        self._robot = self._build_robot()
        self._ground = -1
        self._ground_key: str | None = None
        self._hf_shape = -1  # heightfield collision shape, updated in place at each reset
        self._hf_centre_z = 0.0  # vertical centring bullet gave the heightfield when it was created
        self._base_masses = {
            link: self._bc.getDynamicsInfo(self._robot, link)[0] for link in (HULL, *MOTOR_JOINTS)
        }
        self._base_inertia = {
            link: np.array(self._bc.getDynamicsInfo(self._robot, link)[2]) for link in (HULL, *MOTOR_JOINTS)
        }
        self._mass_scales = (1.0, 1.0)  # (hull, legs) scales applied to the masses above
        self._friction = -1.0  # ground friction coefficient in force; -1 = not set yet
        cid, robot = self._bc._client, self._robot
        # pybullet functions bound to this client and robot: the BulletClient proxy adds a cost to every call, and
        # these run every control step (the first three every physics substep)
        motor_ids = list(MOTOR_JOINTS)
        self._get_motor_states = functools.partial(p.getJointStates, robot, motor_ids, cid)
        self._set_torques = functools.partial(
            p.setJointMotorControlArray, robot, motor_ids, p.TORQUE_CONTROL, physicsClientId=cid
        )
        self._step_sim = functools.partial(p.stepSimulation, cid)
        self._get_all_states = functools.partial(p.getJointStates, robot, list(range(7)), cid)
        self._get_contacts = functools.partial(p.getContactPoints, physicsClientId=cid)
        self._contacts_stale = True  # no step yet: bullet reports no contacts (see reset_joints)
        self._reset_joint = functools.partial(p.resetJointState, robot, physicsClientId=cid)
        self._ray_batch = functools.partial(p.rayTestBatch, collisionFilterMask=1, physicsClientId=cid)
        r_max = BIPED_SPEC.sensors.lidar_max_range_m
        self._lidar_dxz = [(r_max * math.cos(a), -r_max * math.sin(a)) for a in BIPED_SPEC.sensors.lidar_angles_rad]

    # ------------------------------------------------------------------------------------------ model
    def _build_robot(self) -> int:
        bc = self._bc
        hx, hy, hz = HULL_HALF_EXTENTS_M
        hull_col = bc.createCollisionShape(p.GEOM_BOX, halfExtents=HULL_HALF_EXTENTS_M)
        hull_vis = bc.createVisualShape(p.GEOM_BOX, halfExtents=HULL_HALF_EXTENTS_M, rgbaColor=[0.55, 0.4, 0.85, 1])
        thigh_col = bc.createCollisionShape(
            p.GEOM_CAPSULE, radius=THIGH_RADIUS_M, height=THIGH_LENGTH_M, collisionFramePosition=[0, 0, -THIGH_LENGTH_M / 2]
        )
        shank_col = bc.createCollisionShape(
            p.GEOM_CAPSULE, radius=SHANK_RADIUS_M, height=SHANK_LENGTH_M, collisionFramePosition=[0, 0, -SHANK_LENGTH_M / 2]
        )

        def leg_vis(r: float, length: float, rgba: list[float]) -> int:
            return bc.createVisualShape(
                p.GEOM_CAPSULE, radius=r, length=length, rgbaColor=rgba, visualFramePosition=[0, 0, -length / 2]
            )

        left, right = [0.9, 0.55, 0.3, 1], [0.6, 0.35, 0.2, 1]
        masses = [BOOM_LINK_MASS_KG, BOOM_LINK_MASS_KG, HULL_MASS_KG, THIGH_MASS_KG, SHANK_MASS_KG, THIGH_MASS_KG, SHANK_MASS_KG]
        cols = [-1, -1, hull_col, thigh_col, shank_col, thigh_col, shank_col]
        vis = [
            -1, -1, hull_vis,
            leg_vis(THIGH_RADIUS_M, THIGH_LENGTH_M, left), leg_vis(SHANK_RADIUS_M, SHANK_LENGTH_M, left),
            leg_vis(THIGH_RADIUS_M, THIGH_LENGTH_M, right), leg_vis(SHANK_RADIUS_M, SHANK_LENGTH_M, right),
        ]  # fmt: skip
        positions = [
            [0, 0, 0], [0, 0, 0], [0, 0, 0],
            [0, LEG_Y_OFFSET_M, -hz], [0, 0, -THIGH_LENGTH_M],
            [0, -LEG_Y_OFFSET_M, -hz], [0, 0, -THIGH_LENGTH_M],
        ]  # fmt: skip
        # parent of link i as (link index + 1), 0 = world base: boom x → boom z → hull → thigh → shank
        parents = [0, 1, 2, 3, 4, 3, 6]
        joint_types = [p.JOINT_PRISMATIC, p.JOINT_PRISMATIC] + [p.JOINT_REVOLUTE] * 5
        # + pitch = nose down (rotation about +y); legs rotate about −y so + = swing forward
        axes = [[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0]]
        n = 7
        robot = bc.createMultiBody(
            baseMass=0,
            baseCollisionShapeIndex=-1,
            baseVisualShapeIndex=-1,
            basePosition=[0, 0, 0],
            linkMasses=masses,
            linkCollisionShapeIndices=cols,
            linkVisualShapeIndices=vis,
            linkPositions=positions,
            linkOrientations=[[0, 0, 0, 1]] * n,
            linkInertialFramePositions=[[0, 0, 0], [0, 0, 0], [0, 0, 0],
                                        [0, 0, -THIGH_LENGTH_M / 2], [0, 0, -SHANK_LENGTH_M / 2],
                                        [0, 0, -THIGH_LENGTH_M / 2], [0, 0, -SHANK_LENGTH_M / 2]],
            linkInertialFrameOrientations=[[0, 0, 0, 1]] * n,
            linkParentIndices=parents,
            linkJointTypes=joint_types,
            linkJointAxis=axes,
            useMaximalCoordinates=False,
        )  # fmt: skip
        for j in range(n):  # free joints: disable the default velocity motors, no joint damping in bullet
            bc.setJointMotorControl2(robot, j, p.VELOCITY_CONTROL, force=0)
            bc.changeDynamics(robot, j, linearDamping=0, angularDamping=0, jointDamping=0)
        for j, m in zip(MOTOR_JOINTS, BIPED_SPEC.action.motors, strict=True):
            bc.changeDynamics(robot, j, jointLowerLimit=m.joint_low_rad, jointUpperLimit=m.joint_high_rad)
        # the robot (group 2) collides with the ground (group 1); lidar rays only test group 1
        for link in (HULL, *MOTOR_JOINTS):
            bc.setCollisionFilterGroupMask(robot, link, 2, 1)
        return robot

    def set_ground(self, heights: np.ndarray | None, cell_m: float, friction: float) -> None:
        """Flat plane (``heights`` None), or a heightfield along x from x = −3 m (updated in place: rebuilding the
        body is far slower, BENCHMARKS.md, Simulation speed); ``friction`` is the ground's lateral friction coefficient."""
        bc = self._bc
        if heights is None:
            if self._ground_key != "plane":
                if self._ground >= 0:
                    bc.removeBody(self._ground)
                self._ground = bc.createMultiBody(0, bc.createCollisionShape(p.GEOM_PLANE))
        else:
            h = heights
            n_cols = 8
            data = np.repeat(h[:, None], n_cols, axis=1).T.reshape(-1).tolist()  # row-major: x fastest
            # GEOM_CONCAVE_INTERNAL_EDGE: bullet corrects contacts on the edges between the heightfield's triangles.
            # Without it a foot that slides over an edge gets a tilted normal that holds it back (a ghost collision):
            # even a flat heightfield tripped policies that walk on the plane (BENCHMARKS.md, session 13).
            kwargs = dict(meshScale=[cell_m, 0.2, 1.0], heightfieldData=data, numHeightfieldRows=len(h),
                          numHeightfieldColumns=n_cols, flags=p.GEOM_CONCAVE_INTERNAL_EDGE)  # fmt: skip
            # bullet centres the heightfield on its origin, heights centred between min and max
            pos = [-3.0 + (len(h) - 1) * cell_m / 2, 0.0, float(h.max() + h.min()) / 2]
            if self._ground_key == "heightfield":
                # an updated heightfield keeps the vertical centring of the one it was created with
                bc.createCollisionShape(p.GEOM_HEIGHTFIELD, replaceHeightfieldIndex=self._hf_shape, **kwargs)
                pos[2] = self._hf_centre_z
                bc.resetBasePositionAndOrientation(self._ground, pos, [0, 0, 0, 1])
            else:
                self._hf_centre_z = pos[2]
                if self._ground >= 0:
                    bc.removeBody(self._ground)
                self._hf_shape = bc.createCollisionShape(p.GEOM_HEIGHTFIELD, **kwargs)
                self._ground = bc.createMultiBody(0, self._hf_shape, basePosition=pos)
        key = "plane" if heights is None else "heightfield"
        if key != self._ground_key:
            bc.setCollisionFilterGroupMask(self._ground, -1, 1, 3)
            for link in FOOT_LINKS:
                bc.changeDynamics(self._robot, link, lateralFriction=1.0)
            self._ground_key = key
            self._friction = -1.0
        if friction != self._friction:
            bc.changeDynamics(self._ground, -1, lateralFriction=friction)
            self._friction = friction

    def set_mass_scales(self, hull_scale: float, leg_scale: float) -> None:
        """Scale the hull's and the legs' masses and inertias from their nominal values."""
        scales = (hull_scale, leg_scale)
        if scales != self._mass_scales:  # skip the bullet calls: random-action episodes are short
            for link, m0 in self._base_masses.items():
                scale = scales[0] if link == HULL else scales[1]
                self._bc.changeDynamics(self._robot, link, mass=m0 * scale,
                                        localInertiaDiagonal=(self._base_inertia[link] * scale).tolist())  # fmt: skip
            self._mass_scales = scales

    def set_substep(self, dt_s: float) -> None:
        """Physics time step (s) of the coming substeps."""
        self._bc.setPhysicsEngineParameter(fixedTimeStep=dt_s)

    def reset_joints(self, q0: list[float]) -> None:
        """Put every joint (boom x, boom z, pitch, then the motors) at ``q0`` (m or rad) at rest."""
        reset_joint = self._reset_joint
        for j, q in enumerate(q0):  # one call per joint: resetJointStatesMultiDof does not give the same physics
            reset_joint(j, q, 0.0)
        # bullet's contact list is the last step's until the next step: after a reset it would still hold the
        # previous episode's contacts, so a reused env's first observation would differ from a fresh env's
        self._contacts_stale = True

    def motor_speeds(self) -> list[float]:
        """Motor joint speeds (rad/s) now."""
        return [s[1] for s in self._get_motor_states()]

    def substep(self, torques_nm: list[float]) -> None:
        """Apply the motor torques (N·m) and advance one physics substep."""
        self._set_torques(forces=torques_nm)
        self._step_sim()
        self._contacts_stale = False

    def motor_substeps(self, motor: MotorModel, joint_vel: list[float], n: int) -> None:
        run_substeps(motor, self.motor_speeds, self.substep, joint_vel, n)

    def push_hull(self, force_x_n: float) -> None:
        pos = self._bc.getLinkState(self._robot, HULL)[0]
        self._bc.applyExternalForce(self._robot, HULL, [force_x_n, 0.0, 0.0], pos, p.WORLD_FRAME)

    def read_state(self) -> BipedState:
        js = self._get_all_states()
        links = set() if self._contacts_stale else {c[3] for c in self._get_contacts(self._robot, self._ground)}
        sx, sz, sp, *legs = js
        return BipedState(sx[0], sz[0], sp[0], sx[1], sz[1], sp[1], [s[0] for s in legs], [s[1] for s in legs], links)

    def ground_contact_forces(self) -> list[tuple[int, float, float]]:
        """(robot link, normal force N, tangential force N) of each contact point with the ground, from the last
        substep (a diagnostic: ``benchmarks/biped_gait.py`` reads the friction a gait demands from it)."""
        return [(c[3], c[9], math.hypot(c[10], c[12])) for c in self._get_contacts(self._robot, self._ground)]

    def lidar(self, x: float, z: float) -> list[float]:
        """Ranges (m) of the levelled rays from (x, 0, z); max range where a ray hits nothing."""
        to = [[x + dx, 0.0, z + dz] for dx, dz in self._lidar_dxz]
        r_max = BIPED_SPEC.sensors.lidar_max_range_m
        return [h[2] * r_max for h in self._ray_batch([[x, 0.0, z]] * len(to), to)]

    def render(self) -> np.ndarray:
        bc = self._bc
        x = bc.getJointState(self._robot, X_SLIDER)[0]
        view = bc.computeViewMatrix(cameraEyePosition=[x + 0.4, -2.4, 0.8], cameraTargetPosition=[x + 0.4, 0, 0.45],
                                    cameraUpVector=[0, 0, 1])  # fmt: skip
        proj = bc.computeProjectionMatrixFOV(fov=45, aspect=400 / 300, nearVal=0.1, farVal=20.0)
        _, _, rgba, _, _ = bc.getCameraImage(400, 300, view, proj, renderer=p.ER_TINY_RENDERER)
        return np.asarray(rgba, dtype=np.uint8).reshape(300, 400, 4)[:, :, :3]

    def close(self) -> None:
        if getattr(self, "_bc", None) is not None:
            with contextlib.suppress(p.error):
                self._bc.disconnect()
            self._bc = None
