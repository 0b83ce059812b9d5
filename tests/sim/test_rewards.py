"""Reward weights of the robots' task configs (sim.biped.BipedReward, sim.knob.KnobReward) and the actuation-cost
terms of sim.rewards: hand-computed values, off by default (the v0 reward bit for bit), seeded determinism with
the terms, pushes and sensor noise on, and the one-line errors of a bad weight config."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim  # noqa: F401  (registers the envs)
from sim.biped import BIPED_REWARD_PRESETS, BipedEnv, BipedReward
from sim.errors import UserError
from sim.knob import KNOB_REWARD_PRESETS, KnobEnv, KnobReward
from sim.rewards import ActuationWeights, actuation_terms, reward_weights
from sim.robots import BIPED_SPEC

ACTUATION_KEYS = {"action_rate", "torque_sq", "power", "at_limit"}
# the terms that are off and absent by default, besides ACTUATION_KEYS (either robot)
OPTIONAL_KEYS = {"action_acc", "near_limit", "air_time", "step_length", "foot_slip", "orientation", "overspeed",
                 "standing", "hip_stop"}  # fmt: skip


def test_actuation_terms_by_hand():
    w = ActuationWeights(action_rate=2.0, torque_sq=3.0, power_per_w=0.5, at_limit=7.0)
    terms = actuation_terms(w, [1.0, -0.5], [0.0, 0.5], [2.0, -1.0], [3.0, 4.0])
    # rate (1 + 1) = 2; sq 1 + 0.25; power |6| + |-4| = 10 W; one motor at the limit
    assert terms == {"action_rate": -4.0, "torque_sq": -3.75, "power": -5.0, "at_limit": -7.0}
    assert not ActuationWeights().actuation_on and w.actuation_on


def test_action_acc_is_the_second_difference_and_charges_fast_oscillation_most():
    """action_acc = Σ (a_t − 2a_{t−1} + a_{t−2})², absent while its weight is 0. Per unit of amplitude, a command
    oscillating at 10 Hz costs more over 4 Hz in action_acc than in action_rate (the fourth vs the second power)."""
    w = ActuationWeights(action_accel=2.0)
    terms = actuation_terms(w, [1.0, -0.5], [0.5, 0.0], [0.0, 0.0], [0.0, 0.0], [0.5, 1.0])
    assert terms["action_acc"] == pytest.approx(-2.0 * ((1 - 1 + 0.5) ** 2 + (-0.5 - 0 + 1) ** 2))
    assert actuation_terms(w, [1.0], [0.0], [0.0], [0.0])["action_acc"] == -2.0  # a_{t−2} defaults to 0
    assert "action_acc" not in actuation_terms(ActuationWeights(action_rate=1.0), [1.0], [0.0], [0.0], [0.0])
    assert w.actuation_on

    def mean_cost(weights: ActuationWeights, f_hz: float) -> float:
        a = np.sin(2 * np.pi * f_hz * np.arange(200) / 50.0)
        return -float(np.mean([sum(actuation_terms(weights, [a[t]], [a[t - 1]], [0.0], [0.0], [a[t - 2]]).values())
                               for t in range(2, 200)]))  # fmt: skip

    rate, acc = ActuationWeights(action_rate=1.0), ActuationWeights(action_accel=1.0)
    assert mean_cost(acc, 10.0) / mean_cost(acc, 4.0) > 1.5 * mean_cost(rate, 10.0) / mean_cost(rate, 4.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=1, max_size=4), st.floats(0, 0.95))
def test_near_limit_is_zero_inside_its_share_one_per_motor_at_the_limit_and_monotone(a, start):
    """near_limit: 0 while every |a| ≤ near_limit_from, weight × 1 per motor at the limit, growing with |a|."""
    w = ActuationWeights(near_limit=2.0, near_limit_from=start)
    zeros = [0.0] * len(a)
    cost = -actuation_terms(w, a, zeros, zeros, zeros)["near_limit"]
    assert 0 <= cost <= 2.0 * len(a) + 1e-9
    if all(abs(x) <= start for x in a):
        assert cost == 0
    at_limit = [1.0] * len(a)
    assert -actuation_terms(w, at_limit, zeros, zeros, zeros)["near_limit"] == pytest.approx(2.0 * len(a))
    bigger = [min(1.0, abs(x) + 0.01) for x in a]
    assert -actuation_terms(w, bigger, zeros, zeros, zeros)["near_limit"] >= cost - 1e-12


def test_near_limit_by_hand_and_only_when_weighted():
    w = ActuationWeights(near_limit=0.5, near_limit_from=0.8)
    terms = actuation_terms(w, [0.9, -1.0, 0.5], [0.0] * 3, [0.0] * 3, [0.0] * 3)
    assert terms["near_limit"] == pytest.approx(-0.5 * (0.5**2 + 1.0))
    assert w.actuation_on
    assert "near_limit" not in actuation_terms(ActuationWeights(at_limit=1.0), [1.0], [0.0], [0.0], [0.0])
    with pytest.raises(UserError, match="near_limit_from must be a share of the torque limit below 1"):
        ActuationWeights(near_limit=1.0, near_limit_from=1.0)


def test_biped_and_knob_action_acc_match_the_commands_sent():
    """In both envs the term reads the commands actually sent (clipped), the first steps against zeros."""
    rng = np.random.default_rng(3)
    for env in (BipedEnv(reward=BipedReward(action_accel=0.5)), KnobEnv(reward=KnobReward(action_accel=0.5))):
        try:
            env.reset(seed=0)
            hist = [np.zeros(4), np.zeros(4)]
            for _ in range(12):
                a = rng.uniform(-1.3, 1.3, 4).astype(np.float32)
                _, reward, terminated, _, info = env.step(a)
                cmd = np.clip(a.astype(np.float64), -1, 1)
                expect = -0.5 * np.sum((cmd - 2 * hist[-1] + hist[-2]) ** 2)
                assert info["reward_terms"]["action_acc"] == pytest.approx(expect, rel=1e-6)
                assert reward == pytest.approx(sum(info["reward_terms"].values()), abs=1e-9)
                hist.append(cmd)
                if terminated:
                    break
        finally:
            env.close()


def test_weights_config_errors(tmp_path):
    with pytest.raises(UserError, match="must be a number >= 0"):
        BipedReward(action_rate=-1.0)
    with pytest.raises(UserError, match="unknown BipedReward fields \\['action_rat'\\]"):
        reward_weights(BipedReward, {"action_rat": 1.0}, BIPED_REWARD_PRESETS)
    with pytest.raises(UserError, match="neither a preset"):
        reward_weights(KnobReward, "smoth", KNOB_REWARD_PRESETS)
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"action_rate": 0.5, "posture": 4.0}))
    assert reward_weights(BipedReward, str(path), BIPED_REWARD_PRESETS) == BipedReward(action_rate=0.5, posture=4.0)
    assert reward_weights(BipedReward, "smooth", BIPED_REWARD_PRESETS) is BIPED_REWARD_PRESETS["smooth"]


def _episode(env: gym.Env, seed: int, params: dict | None = None, steps: int = 120) -> list:
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed, options={"params": params} if params else None)
    out = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
        out.append((obs, reward, dict(info["reward_terms"]), info["applied_torque_nm"]))
        if terminated or truncated:
            break
    return out


def _same(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a[1:], b[1:], strict=True):
        if not (np.array_equal(x[0], y[0]) and x[1] == y[1] and x[2] == y[2] and np.array_equal(x[3], y[3])):
            return False
    return np.array_equal(a[0], b[0])


@pytest.mark.parametrize("cls", [BipedEnv, KnobEnv])
def test_default_weights_are_the_v0_reward(cls):
    """reward=None, the ``default`` preset and an explicit default dataclass give the same episode, bit for bit,
    with the v0 reward-term keys only (the golden digests of tests/sim/test_nominal_golden.py pin v0 itself)."""
    a, b = cls(), cls(reward="default")
    try:
        ep_a, ep_b = _episode(a, 3), _episode(b, 3)
        assert _same(ep_a, ep_b)
        assert not (ACTUATION_KEYS | OPTIONAL_KEYS) & set(ep_a[1][2])
    finally:
        a.close()
        b.close()


def test_biped_actuation_terms_match_the_episode():
    """With the ``smooth`` weights, each step's terms are the hand formula of the commands sent, the torques the
    motors applied and the joint speeds, and the reward is the sum of all terms."""
    env = BipedEnv(reward="smooth")
    w = env.reward_weights
    try:
        rng = np.random.default_rng(0)
        env.reset(seed=0)
        prev = np.zeros(4)
        for _ in range(40):
            a = rng.uniform(-1.2, 1.2, 4).astype(np.float32)
            _, reward, terminated, _, info = env.step(a)
            t = info["reward_terms"]
            cmd = np.clip(a.astype(np.float64), -1, 1)
            speed = np.asarray(env._state.dq)  # noqa: SLF001  (the joint speeds the power term used)
            applied = np.asarray(env._motor.last_applied_nm)  # noqa: SLF001
            assert t["action_rate"] == pytest.approx(-w.action_rate * np.sum((cmd - prev) ** 2), rel=1e-6)
            assert t["torque_sq"] == pytest.approx(-w.torque_sq * np.sum(cmd**2), rel=1e-6)
            assert t["power"] == pytest.approx(-w.power_per_w * np.sum(np.abs(applied * speed)), rel=1e-9)
            assert t["at_limit"] == pytest.approx(-w.at_limit * np.sum(np.abs(cmd) >= 0.99))
            assert reward == pytest.approx(sum(t.values()), abs=1e-12)
            prev = cmd
            if terminated:
                break
    finally:
        env.close()


def test_knob_actuation_terms_and_reward_sum():
    env = KnobEnv(reward=KnobReward(action_rate=1.0, at_limit=2.0))
    try:
        env.reset(seed=1)
        _, r1, *_ , info1 = env.step(np.array([1.0, 0.0, -1.0, 0.5], dtype=np.float32))
        _, r2, *_ , info2 = env.step(np.array([1.0, 0.0, -1.0, 0.5], dtype=np.float32))
        t1, t2 = info1["reward_terms"], info2["reward_terms"]
        assert t1["action_rate"] == pytest.approx(-(1 + 1 + 0.25)) and t2["action_rate"] == 0.0
        assert t1["at_limit"] == t2["at_limit"] == -4.0 and t1["torque_sq"] == 0.0
        assert r1 == pytest.approx(sum(t1.values())) and r2 == pytest.approx(sum(t2.values()))
    finally:
        env.close()


def test_pushes_and_noise_seeded_and_off_by_default():
    """Training options (pushes, sensor noise on every channel, the smooth reward) are deterministic for a seed,
    differ between seeds, and are off at nominal: a nominal episode never pushes."""
    params = {"push_force": 150.0, "push_interval": 0.5, "encoder_noise": 0.01, "imu_noise": 0.01,
              "velocity_noise": 0.05, "lidar_noise": 0.02, "action_latency": 0.02, "sensor_delay": 0.02}  # fmt: skip
    envs = [BipedEnv(reward="smooth") for _ in range(2)]
    try:
        a, b = _episode(envs[0], 5, params), _episode(envs[1], 5, params)
        assert _same(a, b)
        assert not _same(a, _episode(envs[1], 6, params))
        pushes = []
        envs[0].reset(seed=5)
        envs[0]._plant.push_hull = pushes.append  # type: ignore[method-assign]  # noqa: SLF001
        for _ in range(100):
            envs[0].step(np.zeros(4, dtype=np.float32))
        assert pushes == []  # nominal: push_force 0, no pushes at all
        envs[0].reset(seed=5, options={"params": {"push_force": 150.0, "push_interval": 0.5}})
        for _ in range(150):
            envs[0].step(np.zeros(4, dtype=np.float32))
        assert any(abs(f) == 150.0 for f in pushes)
    finally:
        for e in envs:
            e.close()


def test_biped_air_time_term_pays_at_touchdown():
    """The gait term (BipedReward.feet_air_time) is paid once per touchdown, for that foot's swing time relative
    to the target: a long swing earns, a short one costs, a foot that stays down or in the air earns nothing."""
    from sim.biped import FOOT_LINKS

    env = BipedEnv(reward=BipedReward(feet_air_time=2.0, air_time_target_s=0.1))
    try:
        env.reset(seed=0)
        left, right = FOOT_LINKS
        dt_s = 1.0 / env.robot_spec.control_hz
        assert env._air_time_term({left, right}) == 0.0  # both down from the start: nothing
        for _ in range(10):  # the left foot swings 10 steps, the right one 2 steps, then both touch down
            assert env._air_time_term({right}) == 0.0
        assert env._air_time_term(set()) == 0.0
        assert env._air_time_term(set()) == 0.0
        pay = env._air_time_term({left, right})
        assert pay == pytest.approx(2.0 * (12 * dt_s - 0.1) + 2.0 * (2 * dt_s - 0.1))
        assert env._air_time_term({left, right}) == 0.0
    finally:
        env.close()


def test_biped_air_time_off_by_default_and_in_the_stride_preset():
    env = BipedEnv(reward="stride")
    try:
        env.reset(seed=1)
        keys: set[str] = set()
        for _ in range(30):
            _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
            keys |= set(info["reward_terms"])
            assert reward == pytest.approx(sum(info["reward_terms"].values()))
            if terminated:
                break
        assert "air_time" in keys and keys >= ACTUATION_KEYS
    finally:
        env.close()
    assert not BipedReward().gait_on and not BIPED_REWARD_PRESETS["smooth"].gait_on


def test_foot_slip_speed_is_the_speed_of_the_foot_bottom_in_the_engine():
    """foot_slip_mps (planar kinematics) against pybullet's own velocity of the shank's lowest point, over random
    commands that swing, slide and lift the feet."""
    import pybullet as p

    from sim.biped import FOOT_LINKS, SHANK_LENGTH_M, SHANK_RADIUS_M, foot_slip_mps

    env = BipedEnv()
    try:
        env.reset(seed=5)
        plant, rng = env._plant, np.random.default_rng(5)
        client = plant._bc._client
        speeds = []
        for _ in range(40):
            env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            state = plant.read_state()
            for leg, link in enumerate(FOOT_LINKS):
                ls = p.getLinkState(plant._robot, link, computeLinkVelocity=1, computeForwardKinematics=1,
                                    physicsClientId=client)  # fmt: skip
                rot = np.array(p.getMatrixFromQuaternion(ls[5])).reshape(3, 3)
                bottom = np.array(ls[4]) + rot @ [0.0, 0.0, -SHANK_LENGTH_M] - [0.0, 0.0, SHANK_RADIUS_M]
                v_bottom = np.array(ls[6]) + np.cross(ls[7], bottom - np.array(ls[0]))
                assert foot_slip_mps(state, leg) == pytest.approx(v_bottom[0], abs=1e-6)
                speeds.append(abs(v_bottom[0]))
        assert max(speeds) > 0.5  # the feet moved, so the comparison tested the kinematics
    finally:
        env.close()


def test_hip_stop_charges_only_inside_the_margin_of_a_hip_stop():
    """0 away from the stops and for the knees; the square of the depth inside the margin, per hip."""
    from sim.biped import HIP_MOTORS, hip_stop_sq_rad2

    hip = BIPED_SPEC.action.motors[HIP_MOTORS[0]]
    assert hip_stop_sq_rad2([0.0, -2.4, 0.0, 0.0], 0.3) == 0.0  # knees at their stops are not charged
    assert hip_stop_sq_rad2([hip.joint_high_rad - 0.3, 0.0, 0.0, 0.0], 0.3) == 0.0
    assert hip_stop_sq_rad2([hip.joint_high_rad - 0.1, 0.0, hip.joint_low_rad, 0.0], 0.3) == pytest.approx(
        0.2**2 + 0.3**2)
    assert hip_stop_sq_rad2([hip.joint_high_rad, 0.0, 0.0, 0.0], 0.0) == 0.0
    with pytest.raises(UserError, match="hip_stop_margin_rad"):
        BipedReward(hip_stop_margin_rad=-0.1)


def test_biped_hip_stop_term_in_the_env_and_off_by_default():
    from sim.biped import hip_stop_sq_rad2

    env = BipedEnv(reward=BipedReward(hip_stop=2.0, hip_stop_margin_rad=1.0))
    try:
        env.reset(seed=3)
        charged = 0
        for _ in range(30):
            _, reward, done, _, info = env.step(np.array([1.0, 0.0, -1.0, 0.0], np.float32))
            expected = -2.0 * hip_stop_sq_rad2(env._state.q, 1.0)
            assert info["reward_terms"]["hip_stop"] == expected
            assert reward == pytest.approx(sum(info["reward_terms"].values()))
            charged += expected < 0
            if done:
                break
        assert charged > 0  # the hips reached the margin, so the comparison tested a charge
    finally:
        env.close()
    env = BipedEnv()
    try:
        env.reset(seed=3)
        assert "hip_stop" not in env.step(np.zeros(4, np.float32))[4]["reward_terms"]
    finally:
        env.close()


def test_biped_foot_slip_and_orientation_terms_by_hand_and_off_by_default():
    """foot_slip: the grounded feet's slip speeds, summed; orientation: the hull's pitch², every step."""
    from sim.biped import FOOT_LINKS, foot_slip_mps

    env = BipedEnv(reward=BipedReward(feet_slip=2.0, orientation=3.0))
    try:
        env.reset(seed=2)
        rng, grounded = np.random.default_rng(2), 0
        for _ in range(40):
            _, reward, done, _, info = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            state = env._state
            feet = [i for i, foot in enumerate(FOOT_LINKS) if foot in state.contact_links]
            grounded += len(feet)
            assert info["reward_terms"]["foot_slip"] == -2.0 * sum(abs(foot_slip_mps(state, i)) for i in feet)
            assert info["reward_terms"]["orientation"] == -3.0 * state.pitch**2
            assert reward == pytest.approx(sum(info["reward_terms"].values()))
            if done:
                break
        assert grounded > 0
    finally:
        env.close()
    env = BipedEnv()
    try:
        env.reset(seed=2)
        assert not {"foot_slip", "orientation"} & set(env.step(np.zeros(4, np.float32))[4]["reward_terms"])
    finally:
        env.close()


def test_biped_overspeed_charges_speed_above_the_cap_and_needs_a_cap():
    """overspeed: per m/s of hull speed above speed_cap_mps, each step; progress stays capped; no cap, no term."""
    from sim.biped import BIPED_SPEC, PROGRESS_REWARD_PER_M

    cap_mps, hz = 0.05, BIPED_SPEC.control_hz
    env = BipedEnv(reward=BipedReward(speed_cap_mps=cap_mps, overspeed=0.4))
    try:
        env.reset(seed=4)
        charged, x = 0, env._state.x
        for _ in range(60):  # legs scissored: the hull pitches and lurches forward, then falls
            _, reward, done, _, info = env.step(np.array([0.5, -0.5, -0.5, 0.5], np.float32))
            moved, x = env._state.x - x, env._state.x
            t = info["reward_terms"]
            assert t["overspeed"] == pytest.approx(-0.4 * max(0.0, moved * hz - cap_mps), abs=1e-9)
            assert t["progress"] == pytest.approx(PROGRESS_REWARD_PER_M * min(moved, cap_mps / hz), abs=1e-9)
            assert reward == pytest.approx(sum(t.values()))
            charged += t["overspeed"] < 0
            if done:
                break
        assert charged > 0
    finally:
        env.close()
    with pytest.raises(UserError, match="set a speed cap"):
        BipedReward(overspeed=0.4)


def test_biped_step_length_pays_a_walk_and_not_a_skip():
    """step_length: at a touchdown after the other foot's, how far ahead of the other foot the landing foot is.
    Alternating steps earn their lengths; a skip (the same foot always in front) earns +d then −d over a cycle; a
    foot tapping again earns nothing."""
    from sim.biped import FOOT_LINKS, SHANK_LENGTH_M, THIGH_LENGTH_M, BipedState, foot_ahead_m

    left, right = FOOT_LINKS
    legs_apart = [0.3, 0.0, -0.3, 0.0]  # left thigh forward, right back, knees straight, hull level
    swapped = [-0.3, 0.0, 0.3, 0.0]
    d = 2 * (THIGH_LENGTH_M + SHANK_LENGTH_M) * np.sin(0.3)  # the two straight legs' feet, at ±0.3 rad

    def state(q: list[float], links: set[int]) -> BipedState:
        return BipedState(0.0, 0.8, 0.0, 0.0, 0.0, 0.0, q, [0.0] * 4, links)

    assert foot_ahead_m(state(legs_apart, set()), 0) == pytest.approx(d / 2)
    env = BipedEnv(reward=BipedReward(step_length=2.0))
    try:
        env.reset(seed=0)
        env._air_s = [0.2, 0.0]  # the left foot swings, the right one stands
        assert env._step_length_term(state(legs_apart, {left, right})) == pytest.approx(2.0 * d)  # lands ahead
        env._air_s = [0.0, 0.2]
        assert env._step_length_term(state(swapped, {left, right})) == pytest.approx(2.0 * d)  # a walk: both pay
        env._air_s = [0.0, 0.2]
        assert env._step_length_term(state(legs_apart, {left, right})) == 0.0  # the right foot taps again
        env._air_s = [0.2, 0.0]
        assert env._step_length_term(state(legs_apart, {left, right})) == pytest.approx(2.0 * d)
        env._air_s = [0.0, 0.2]
        assert env._step_length_term(state(legs_apart, {left, right})) == pytest.approx(-2.0 * d)  # a skip
        env._air_s = [0.0, 0.0]
        assert env._step_length_term(state(legs_apart, {left, right})) == 0.0  # no touchdown, nothing
    finally:
        env.close()


def test_biped_speed_cap_pays_progress_only_up_to_the_cap():
    """``speed_cap_mps``: the progress term pays at most the cap's metres per step; the posture term and the
    physics are those of the uncapped reward (same seed, same commands)."""
    from sim.biped import PROGRESS_REWARD_PER_M

    capped, free = BipedEnv(reward=BipedReward(speed_cap_mps=0.05)), BipedEnv()
    try:
        most = PROGRESS_REWARD_PER_M * 0.05 / capped.robot_spec.control_hz
        capped.reset(seed=3)
        free.reset(seed=3)
        rng = np.random.default_rng(3)
        cut = 0
        for _ in range(60):
            a = rng.uniform(-1, 1, 4).astype(np.float32)
            _, _, done, _, info = capped.step(a)
            _, _, _, _, ref = free.step(a)
            t, r = info["reward_terms"], ref["reward_terms"]
            assert t["posture"] == r["posture"] and t["progress"] == pytest.approx(min(r["progress"], most), abs=1e-12)
            cut += r["progress"] > most
            if done:
                break
        assert cut > 0  # the cap was reached, so the comparison above tested it
    finally:
        capped.close()
        free.close()
    with pytest.raises(UserError, match="speed_cap_mps"):
        BipedReward(speed_cap_mps=-1.0)


def test_biped_standing_is_charged_only_while_the_hull_is_slow():
    """standing: −weight on each step whose hull speed is below standing_below_mps, 0 otherwise (absent when off:
    test_default_weights_are_the_v0_reward)."""
    env = BipedEnv(reward=BipedReward(standing=0.25, standing_below_mps=0.1))
    try:
        env.reset(seed=0)
        charged = []
        for _ in range(30):
            x0 = env._state.x
            _, reward, terminated, _, info = env.step(np.zeros(4, dtype=np.float32))
            speed = (env._state.x - x0) * BIPED_SPEC.control_hz
            assert info["reward_terms"]["standing"] == (-0.25 if speed < 0.1 else 0.0)
            assert reward == pytest.approx(sum(info["reward_terms"].values()), abs=1e-9)
            charged.append(info["reward_terms"]["standing"] < 0)
            if terminated:
                break
        assert any(charged)  # a robot given no torque does not walk
    finally:
        env.close()
