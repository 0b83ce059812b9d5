"""The MuJoCo twins of the robots against their PyBullet models (MJCF generated from the same constants).

Tolerances are stated per test; docs/mujoco.md explains the modelling choices behind them. The two engines solve
contact differently (PyBullet: rigid, ERP-corrected, iterative; MuJoCo: soft, Newton), so kinematics and
contact-free dynamics agree to rounding, and contact-rich motion agrees to millimetres over short horizons.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import sim  # noqa: F401  (registers the envs)
from sim.biped import BIPED_PARAMS, MOTOR_JOINTS, PHYSICS_HZ, STAND_HEIGHT_M, SUBSTEPS, BipedEnv
from sim.biped_mujoco import LINK_BODIES, MujocoBiped, biped_mjcf
from sim.biped_pybullet import BulletBiped
from sim.knob import KNOB_PARAMS, KnobEnv
from sim.knob_mujoco import FINGER_BODIES, MujocoKnob, knob_mjcf
from sim.knob_pybullet import BulletKnob
from sim.motor import MotorModel
from sim.robots import BIPED_SPEC

FK_TOL = 1e-9  # m and rotation-matrix entries: the same kinematic tree, so only rounding differs
DROP_TOL_M = 0.01  # hull height, first 0.5 s of a passive drop (contact softness and solver differ)
STAND_TOL_M = 0.005  # hull height of a PD stand after 2 s
FREE_TOL_RAD = 1e-6  # joint angles (rad), hull height (m): 0.4-0.5 s of open-loop torques without contact
OPEN_LOOP_TOL_RAD = 0.03  # biped joint angles, 0.2 s of open-loop torques through touchdown into the stance


def _body(model: mujoco.MjModel, name: str) -> int:
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)


def _bullet_pose(bc, body: int, link: int) -> tuple[np.ndarray, np.ndarray]:
    pos, orn = bc.getLinkState(body, link, computeForwardKinematics=True)[:2]
    return np.array(pos), np.array(bc.getMatrixFromQuaternion(orn)).reshape(3, 3)


def test_biped_forward_kinematics_is_identical():
    rng = np.random.default_rng(0)
    bullet, mj = BulletBiped(), MujocoBiped()
    try:
        for _ in range(20):
            motors = [rng.uniform(m.joint_low_rad, m.joint_high_rad) for m in BIPED_SPEC.action.motors]
            q = [rng.uniform(-2, 2), rng.uniform(0.3, 1.2), rng.uniform(-1, 1), *motors]
            bullet.reset_joints(q)
            mj.reset_joints(q)
            for link in range(2, 7):  # hull, thighs, shanks: centre of mass and orientation
                pos, rot = _bullet_pose(bullet._bc, bullet._robot, link)
                b = _body(mj.model, LINK_BODIES[link])
                np.testing.assert_allclose(mj.data.xipos[b], pos, atol=FK_TOL)
                np.testing.assert_allclose(mj.data.ximat[b].reshape(3, 3), rot, atol=FK_TOL)
    finally:
        bullet.close()
        mj.close()


def test_knob_forward_kinematics_is_identical():
    rng = np.random.default_rng(1)
    bullet, mj = BulletKnob(), MujocoKnob()
    try:
        for _ in range(20):
            q = rng.uniform(-1.6, 1.6, 4)
            bullet.reset_state(0.3, q)
            mj.reset_state(0.3, q)
            for link, name in enumerate(FINGER_BODIES):
                pos, rot = _bullet_pose(bullet._bc, bullet._hand, link)
                b = _body(mj.model, name)
                np.testing.assert_allclose(mj.data.xipos[b], pos, atol=FK_TOL)
                np.testing.assert_allclose(mj.data.ximat[b].reshape(3, 3), rot, atol=FK_TOL)
    finally:
        bullet.close()
        mj.close()


def test_masses_and_inertias_match_pybullet():
    """The MJCF carries the masses PyBullet was given and the inertias PyBullet computed for the same shapes."""
    bullet, mj = BulletBiped(), MujocoBiped()
    try:
        for link in range(2, 7):
            mass, _, inertia = bullet._bc.getDynamicsInfo(bullet._robot, link)[:3]
            b = _body(mj.model, LINK_BODIES[link])
            assert mj.model.body_mass[b] == mass
            # bullet stores shape sizes in single precision: its inertias carry float32 rounding
            np.testing.assert_allclose(mj.model.body_inertia[b], inertia, rtol=1e-6)
    finally:
        bullet.close()
        mj.close()


def test_generated_models_compile_and_carry_the_spec():
    biped = mujoco.MjModel.from_xml_string(biped_mjcf())
    for motor in BIPED_SPEC.action.motors:
        j = mujoco.mj_name2id(biped, mujoco.mjtObj.mjOBJ_JOINT, motor.name)
        assert tuple(biped.jnt_range[j]) == (motor.joint_low_rad, motor.joint_high_rad)
    knob = mujoco.MjModel.from_xml_string(knob_mjcf())
    assert knob.nv == 5 and biped.nv == 7


def _drop(engine: str) -> np.ndarray:
    """Hull height (m) every control step of 0.5 s with zero torque commands, from the reset pose."""
    env = BipedEnv(engine=engine)
    try:
        env.reset(seed=0)
        heights = []
        for _ in range(25):
            env.step_torque(np.zeros(4))
            heights.append(env._state.z)
        return np.array(heights)
    finally:
        env.close()


def test_passive_drop_matches():
    bullet, mj = _drop("pybullet"), _drop("mujoco")
    assert bullet[-1] < STAND_HEIGHT_M - 0.3  # the knees buckle: this is a real fall, not a stand
    np.testing.assert_allclose(mj, bullet, atol=DROP_TOL_M)


def _pd_stand(engine: str, seconds: float = 3.0) -> tuple[float, float, float]:
    """An A-frame stand: knees pressed straight against their limit, hips PD-held at ±0.2 rad."""
    env = BipedEnv(engine=engine)
    try:
        env.reset(seed=0)
        for _ in range(int(seconds * 50)):
            f = env.sensor_frame()
            q, dq = f.joint_pos_rad, f.joint_vel_rad_s
            tau = [100.0 * (0.2 - q[0]) - 2.0 * dq[0], 10.0, 100.0 * (-0.2 - q[2]) - 2.0 * dq[2], 10.0]
            _, _, terminated, _, _ = env.step_torque(np.clip(tau, -30, 30))
            assert not terminated, engine
        return env._state.z, env._state.pitch, env._state.x
    finally:
        env.close()


def test_pd_stand_holds_in_both_engines():
    (zb, pb, xb), (zm, pm, xm) = _pd_stand("pybullet"), _pd_stand("mujoco")
    assert zb > 0.78 and zm > 0.78  # standing tall: legs straight, 0.2 rad apart
    assert abs(zb - zm) < STAND_TOL_M and abs(pb - pm) < 0.01 and abs(xb - xm) < 0.03


def _stand_torques(steps: int) -> np.ndarray:
    """The A-frame stand's torque commands (N·m) as PyBullet's closed loop produced them."""
    env = BipedEnv(engine="pybullet")
    env.reset(seed=0)
    out = []
    for _ in range(steps):
        f = env.sensor_frame()
        q, dq = f.joint_pos_rad, f.joint_vel_rad_s
        out.append(np.clip([100.0 * (0.2 - q[0]) - 2.0 * dq[0], 10.0, 100.0 * (-0.2 - q[2]) - 2.0 * dq[2], 10.0], -30, 30))
        env.step_torque(out[-1])
    env.close()
    return np.array(out)


def test_open_loop_torques_on_the_ground_give_the_same_joint_trajectories():
    """Replayed without feedback, through touchdown and into the stance: 0.2 s (10 control steps)."""
    torques = _stand_torques(10)
    paths = {}
    for engine in ("pybullet", "mujoco"):
        env = BipedEnv(engine=engine)
        env.reset(seed=0)
        paths[engine] = [env.step_torque(tau) and env._state.q for tau in torques]
        env.close()
    np.testing.assert_allclose(paths["mujoco"], paths["pybullet"], atol=OPEN_LOOP_TOL_RAD)


def test_open_loop_torques_in_the_air_give_identical_joint_trajectories():
    """The biped lifted 2 m (no contact, no joint limit reached) under 0.5 s of 2 Hz sine torques through the shared
    motor model: masses, inertias, joint axes and integration agree to rounding."""
    t_s = np.arange(25) / 50.0
    commands = 1.0 * np.sin(2 * np.pi * 2.0 * t_s[:, None] + np.arange(4)[None, :])  # N·m, a phase per motor
    paths = {}
    for plant in (BulletBiped(), MujocoBiped()):
        plant.set_ground(None, 0.1, 1.0)
        plant.reset_joints([0.0, 2.0, 0.0, 0.2, -1.2, -0.2, -1.2])
        motor = MotorModel(BIPED_SPEC.action, 1.0 / PHYSICS_HZ)
        path = []
        for cmd in commands:
            motor.command(cmd)
            for _ in range(SUBSTEPS):
                plant.substep(motor.torque(plant.motor_speeds()))
            state = plant.read_state()
            path.append([*state.q, state.z, state.pitch])
        paths[type(plant).__name__] = np.array(path)
        plant.close()
    bullet, mj = paths["BulletBiped"], paths["MujocoBiped"]
    assert np.ptp(bullet[:, :4], axis=0).min() > 0.3  # the joints really moved...
    lows, highs = (np.array([getattr(m, k) for m in BIPED_SPEC.action.motors]) for k in ("joint_low_rad", "joint_high_rad"))
    assert np.all(bullet[:, :4] > lows + 0.02) and np.all(bullet[:, :4] < highs - 0.02)  # ...short of the limits
    np.testing.assert_allclose(mj, bullet, atol=FREE_TOL_RAD)


def test_finger_motion_in_free_air_is_identical():
    """Torques on fingers that never reach the knob or a joint limit: motor model, armature, masses alone."""
    rng = np.random.default_rng(4)
    torques = rng.uniform(-0.2, 0.2, (20, 4))
    paths = {}
    for engine in ("pybullet", "mujoco"):
        env = KnobEnv(engine=engine)
        env.reset(seed=0, options={"start_angle": 0.0, "goal_angle": 3.0})
        paths[engine] = []
        for tau in torques:
            env.step_torque(tau)
            paths[engine].append(env._plant.read_state().q)
        env.close()
    assert np.ptp(paths["pybullet"], axis=0).min() > 0.1
    np.testing.assert_allclose(paths["mujoco"], paths["pybullet"], atol=FREE_TOL_RAD)


@pytest.mark.parametrize("env_id", ["s2r/Biped-v0", "s2r/BipedRough-v0", "s2r/BipedHardcore-v0", "s2r/Knob-v0"])
def test_mujoco_env_is_deterministic_and_checks(env_id):
    from gymnasium.utils.env_checker import check_env

    def run() -> list[np.ndarray]:
        env = gym.make(env_id, engine="mujoco")
        rng = np.random.default_rng(0)
        obs, _ = env.reset(seed=5)
        out = [obs]
        for _ in range(40):
            obs, *_ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            out.append(obs)
        env.close()
        return out

    np.testing.assert_array_equal(run(), run())
    env = gym.make(env_id, engine="mujoco")
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_terrain_heights_match_pybullet():
    """Rough/hardcore terrains: the heightfield the lidar and the feet meet is the one PyBullet builds."""
    for env_id in ("s2r/BipedHardcore-v0", "s2r/BipedRough-v0"):
        b, m = gym.make(env_id).unwrapped, gym.make(env_id, engine="mujoco").unwrapped
        for seed in (3, 4):
            ob, _ = b.reset(seed=seed)
            om, _ = m.reset(seed=seed)
            np.testing.assert_array_equal(b._heights, m._heights)
            np.testing.assert_allclose(om[14:], ob[14:], atol=1e-4)  # lidar fractions at the start
            for x in np.arange(1.0, 18.0, 0.37):
                hit = b._plant._bc.rayTest([x, 0.05, 3.0], [x, 0.05, -3.0], collisionFilterMask=1)[0][3][2]
                d = mujoco.mj_ray(m._plant.model, m._plant.data, np.array([x, 0.05, 3.0]), np.array([0, 0, -1.0]),
                                  m._plant._ray_geomgroup, 1, -1, np.zeros(1, np.int32))  # fmt: skip
                assert 3.0 - d == pytest.approx(hit, abs=1e-6)
        b.close()
        m.close()


def _hull_clearance_after(engine: str, roughness_m: float, steps: int = 5) -> float:
    env = gym.make("s2r/Biped-v0", engine=engine)
    u = env.unwrapped
    env.reset(seed=0, options={"params": {"terrain_roughness": roughness_m}})
    for _ in range(steps):
        env.step(np.zeros(4, np.float32))
    s = u._state
    clearance = s.z - u._ground_height(s.x)
    env.close()
    return clearance


def test_a_flat_start_on_a_heightfield_is_the_plane():
    """The first metre of any terrain is flat, so the first steps on a heightfield are the plane's (PyBullet: the
    same to the mm). The MuJoCo twin failed this until its heightfield was compiled into the collision mid-phase:
    the robot fell through the terrain (docs/mujoco.md)."""
    for engine in ("pybullet", "mujoco"):
        assert _hull_clearance_after(engine, 0.005) == pytest.approx(_hull_clearance_after(engine, 0.0), abs=0.003)


@pytest.mark.parametrize("params", [{"ground_friction": 0.2, "hull_mass_scale": 1.8, "leg_mass_scale": 0.6}])
def test_biped_params_reach_the_mujoco_model(params):
    env = BipedEnv(engine="mujoco")
    env.reset(seed=0, options={"params": params})
    model = env._plant.model
    assert model.geom_friction[env._plant._plane, 0] == params["ground_friction"]
    assert model.body_mass[_body(model, "hull")] == pytest.approx(6.0 * 1.8)
    env.reset(seed=0)
    assert model.body_mass[_body(model, "hull")] == pytest.approx(6.0)
    assert BIPED_PARAMS.nominal()["ground_friction"] == model.geom_friction[env._plant._plane, 0]
    env.close()
    knob = KnobEnv(engine="mujoco")
    knob.reset(seed=0, options={"params": {"knob_friction": 0.1, "finger_mass_scale": 2.0}})
    assert knob._plant.model.dof_frictionloss[knob._plant._knob_dof] == 0.1
    assert KNOB_PARAMS["knob_friction"].high >= 0.1
    knob.close()


def test_engine_choice_is_checked():
    with pytest.raises(ValueError, match="unknown physics engine 'ode'.*pybullet, mujoco"):
        BipedEnv(engine="ode")
    with pytest.raises(ValueError, match="unknown physics engine"):
        KnobEnv(engine="")
    assert MOTOR_JOINTS == (3, 4, 5, 6)
