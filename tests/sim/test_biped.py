"""Behaviour of the planar biped env: API conformance, determinism, parameters, termination, physics sanity."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401  (registers the envs)
from sim.biped import BIPED_PARAMS, BipedEnv
from sim.robots import BIPED_SPEC

# the API checker, seeded determinism and pickling run over every registered env: tests/sim/test_envs.py

@pytest.fixture
def env():
    e = BipedEnv()
    yield e
    e.close()


def test_observation_layout_matches_spec(env):
    obs, info = env.reset(seed=0)
    assert obs.shape == (24,) and obs.dtype == np.float32
    assert len(BIPED_SPEC.obs_fields) == 24
    assert info["params"] == BIPED_PARAMS.nominal()
    # standing still at reset: level hull, no velocity, lidar fractions in [0, 1] with the straight-down ray short
    assert abs(obs[0]) < 1e-6 and abs(obs[2]) < 1e-6
    lidar = obs[14:]
    assert np.all((lidar >= 0) & (lidar <= 1))
    assert lidar[0] == pytest.approx(1.0)  # horizontal ray sees nothing on flat ground
    assert lidar[-1] < 0.4  # the steepest ray hits the ground ~0.8 m below the hull
    assert np.all(np.diff(lidar) <= 1e-6)  # steeper rays hit closer


def test_obs_is_built_from_sensor_frame(env):
    env.reset(seed=3, options={"params": {"encoder_noise": 0.01, "lidar_dropout": 0.3, "imu_noise": 0.01}})
    for _ in range(5):
        obs, *_ = env.step(np.full(4, 0.2, dtype=np.float32))
    np.testing.assert_array_equal(obs, BIPED_SPEC.build_obs(env.sensor_frame()))


def _trajectory(seed: int, params=None, steps: int = 60) -> np.ndarray:
    e = gym.make("s2r/BipedRough-v0")
    rng = np.random.default_rng(123)
    obs, _ = e.reset(seed=seed, options={"params": params} if params else None)
    out = [obs]
    for _ in range(steps):
        obs, _, term, trunc, _ = e.step(rng.uniform(-1, 1, 4).astype(np.float32))
        out.append(obs)
        if term or trunc:
            obs, _ = e.reset()
    e.close()
    return np.array(out)


def test_same_seed_same_trajectory():
    noisy = {"encoder_noise": 0.02, "lidar_noise": 0.05, "action_latency": 0.02, "control_jitter": 0.002}
    a, b = _trajectory(7, noisy), _trajectory(7, noisy)
    np.testing.assert_array_equal(a, b)
    c = _trajectory(8, noisy)
    assert not np.array_equal(a, c)


def test_start_noise_randomizes_the_start_pose_within_its_bounds_and_0_is_the_v0_start():
    from sim.biped import START_NOISE_FULL
    from sim.errors import UserError

    plain, zero, noisy = BipedEnv(), BipedEnv(start_noise=0.0), BipedEnv(start_noise=1.0)
    try:
        for seed in range(5):
            np.testing.assert_array_equal(plain.reset(seed=seed)[0], zero.reset(seed=seed)[0])
        hip_rad, knee_rad, _ = START_NOISE_FULL
        knees = []
        for seed in range(20):
            noisy.reset(seed=seed)
            q = noisy._state.q
            assert all(abs(q[i]) <= 0.05 + hip_rad + 0.02 for i in (0, 2))  # hips (0.02: the drop settles)
            knees += [q[1], q[3]]
        assert min(knees) < -0.05 - knee_rad / 2 < max(knees)  # bent by different amounts
    finally:
        for e in (plain, zero, noisy):
            e.close()
    for bad in (1.5, -0.1, "a", None):
        with pytest.raises(UserError, match="start_noise"):
            BipedEnv(start_noise=bad)


def test_unknown_parameter_is_rejected_with_names(env):
    with pytest.raises(ValueError, match="unknown physical parameter 'gravity'.*ground_friction"):
        env.reset(options={"params": {"gravity": 3.0}})


def test_out_of_limits_parameter_names_range(env):
    with pytest.raises(ValueError, match=r"'ground_friction' = 5 .*\[0.05, 2\]"):
        env.reset(options={"params": {"ground_friction": 5.0}})


def test_params_in_force_are_reported(env):
    _, info = env.reset(seed=0, options={"params": {"ground_friction": 0.4, "action_latency": 0.02}})
    assert info["params"]["ground_friction"] == 0.4
    _, _, _, _, info = env.step(np.zeros(4, dtype=np.float32))
    assert info["params"]["action_latency"] == 0.02
    assert set(info["reward_terms"]) == {"progress", "posture", "torque", "fall"}


def test_non_finite_action_raises(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step(np.array([0, np.nan, 0, 0], dtype=np.float32))


def test_out_of_range_action_is_clipped(env):
    env.reset(seed=0)
    _, _, _, _, info_big = env.step(np.full(4, 5.0, dtype=np.float32))
    env.reset(seed=0)
    _, _, _, _, info_one = env.step(np.full(4, 1.0, dtype=np.float32))
    np.testing.assert_allclose(info_big["applied_torque_nm"], info_one["applied_torque_nm"])
    assert np.all(np.abs(info_one["applied_torque_nm"]) <= 30.0 + 1.0)


def test_fall_terminates_with_penalty_and_time_limit_truncates():
    e = gym.make("s2r/Biped-v0")
    e.reset(seed=0)
    for _ in range(200):  # hips and knees driven fully backward: the hull pitches over
        _, r, term, trunc, info = e.step(np.full(4, -1.0, dtype=np.float32))
        if term:
            break
    assert term and not trunc and info["fell"] and info["reward_terms"]["fall"] == -100.0
    e.close()
    e = gym.make("s2r/Biped-v0", max_episode_steps=30)
    obs, _ = e.reset(seed=0)
    for _ in range(30):  # the standing PD controller below: no fall, so only the time limit ends the episode
        obs, _, term, trunc, info = e.step(_pd_action(obs))
    assert trunc and not term and not info["fell"]
    e.close()


def _pd_action(obs: np.ndarray) -> np.ndarray:
    """Normalized action of a joint PD holding a standing pose: feet spread fore and aft, knees almost straight."""
    q_des = np.array([0.25, -0.05, -0.25, -0.05])
    q, dq = obs[[4, 6, 9, 11]], obs[[5, 7, 10, 12]]
    return np.clip((30.0 * (q_des - q) - 1.0 * dq) / 30.0, -1, 1).astype(np.float32)


def _pd_stand(env: BipedEnv, steps: int) -> tuple[bool, dict]:
    obs, _ = env.reset(seed=1)
    info: dict = {}
    for _ in range(steps):
        obs, _, term, _, info = env.step(_pd_action(obs))
        if term:
            return False, info
    return True, info


def test_pd_controller_keeps_hull_upright(env):
    upright, info = _pd_stand(env, 300)  # 6 s
    assert upright and not info["fell"]
    obs = env.sensor_frame()
    assert abs(obs.imu_pitch_rad) < 0.3
    assert np.all(obs.contacts == 1.0)  # standing on both feet


def test_zero_torque_collapse_is_a_fall(env):
    env.reset(seed=0)
    for _ in range(100):  # no torque: the knees buckle and the hull sinks below the minimum height
        _, _, term, _, info = env.step(np.zeros(4, dtype=np.float32))
        if term:
            break
    assert term and info["fell"]


def test_weak_motors_cannot_stand(env):
    # a crouching PD on a plant with weak motors and a heavy hull sags: strength really acts on the physics
    obs, _ = env.reset(seed=1, options={"params": {"motor_strength": 0.3, "hull_mass_scale": 2.0}})
    q_des = np.array([0.25, -0.6, -0.25, -0.6])
    fell = False
    for _ in range(300):
        q, dq = obs[[4, 6, 9, 11]], obs[[5, 7, 10, 12]]
        obs, _, term, _, info = env.step_torque(np.clip(30.0 * (q_des - q) - dq, -30, 30))
        if term:
            fell = True
            break
    z_low = env._state.z < 0.7
    assert fell or z_low


def test_render_rgb_array_headless():
    e = gym.make("s2r/Biped-v0", render_mode="rgb_array")
    e.reset(seed=0)
    frame = e.render()
    assert frame.shape == (300, 400, 3) and frame.dtype == np.uint8
    assert frame.std() > 10  # not a blank image
    e.close()


def test_terrains_differ_and_are_seeded():
    def lidar_profile(env_id: str, seed: int) -> np.ndarray:
        e = gym.make(env_id)
        e.reset(seed=seed)
        heights = e.unwrapped._heights
        e.close()
        return heights

    assert lidar_profile("s2r/Biped-v0", 0) is None
    rough_a, rough_b = lidar_profile("s2r/BipedRough-v0", 0), lidar_profile("s2r/BipedRough-v0", 0)
    np.testing.assert_array_equal(rough_a, rough_b)
    hard = lidar_profile("s2r/BipedHardcore-v0", 0)
    assert np.ptp(hard) > np.ptp(rough_a)  # stumps, steps and pits


def test_terrain_collision_matches_heights_after_resets():
    """The heightfield is updated in place at each reset: the ground the robot hits must be the new one."""
    e = gym.make("s2r/BipedHardcore-v0").unwrapped
    try:
        for seed in (3, 4, 5):
            e.reset(seed=seed)
            h = e._heights
            grid_x = np.arange(len(h)) * 0.1 - 3.0
            for x in np.arange(1.0, 18.0, 0.37):
                hit = e._plant._bc.rayTest([x, 0.05, 3.0], [x, 0.05, -3.0], collisionFilterMask=1)[0]
                assert hit[3][2] == pytest.approx(np.interp(x, grid_x, h), abs=1e-4)
    finally:
        e.close()


def test_a_flat_heightfield_pushes_the_feet_straight_up_as_the_plane_does():
    """Bullet's contacts on the edges between a heightfield's triangles are corrected (GEOM_CONCAVE_INTERNAL_EDGE):
    a walking robot's feet on a heightfield as flat as the plane feel only upward pushes, none that hold them back."""
    from deploy.bundle import Policy, load_bundle

    policy = Policy(load_bundle("deploy/pretrained/biped"))
    e = BipedEnv()
    try:
        obs, _ = e.reset(seed=2, options={"params": {"terrain_roughness": 1e-6}})  # a heightfield, bumps of 1 µm
        assert e._heights is not None
        plant = e._plant
        normals = []
        for _ in range(300):
            obs, _, terminated, truncated, _ = e.step(BIPED_SPEC.action.to_normalized(policy(obs)))
            contacts = plant._bc.getContactPoints(plant._robot, plant._ground)
            normals += [c[7] for c in contacts if c[9] > 0]  # contacts that push (normal force > 0)
            assert not (terminated or truncated)
        assert len(normals) > 100
        assert min(n[2] for n in normals) > 0.99, "a tilted contact normal on flat ground: a ghost collision"
    finally:
        e.close()
