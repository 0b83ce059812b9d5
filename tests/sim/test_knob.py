"""Behaviour of the knob-turning hand env: API conformance, determinism, contact physics, success bookkeeping,
parameters."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given
from hypothesis import strategies as st

import sim  # noqa: F401  (registers the envs)
from sim.knob import HOLD_STEPS, KNOB_PARAMS, KnobEnv, _wrap
from sim.knob_gait import (
    CONTACT_OFFSET_M,
    FAST,
    L_EFF_M,
    Q2_ENGAGED_RAD,
    Q2_RETRACTED_RAD,
    WINDOW_RAD,
    Y_ENGAGED_M,
    fast_gait_action,
    gait_action,
    predictive_gait_action,
)
from sim.robots import KNOB_SPEC, wrap_angle


@pytest.fixture
def env():
    e = KnobEnv()
    yield e
    e.close()


# ------------------------------------------------------------------------------------ scripted fingers
# finger geometry and the stroke window: the same as sim.knob_gait's memoryless gait


class GaitTurner:
    """Scripted ratchet gait, closed loop on the observation, joint-space PD.

    Each stroke picks the (finger, fin) pair that allows the longest push towards the goal, swings that finger
    behind the fin folded out, folds it in, pushes (≤ 10 cm/s) until the fin reaches the goal or the end of
    the stroke, folds out, and plans again.
    """

    def __init__(self, kp: float = 4.0, kd: float = 0.15, speed_m: float = 0.002):
        self.kp, self.kd, self.speed_m = kp, kd, speed_m
        self.phase, self.t, self.touched = "plan", 0, False

    def _tip_x(self, knob_rad: float) -> float:
        """Tip x (finger frame) touching the fin's pushing side when the knob is at ``knob_rad``."""
        phi = knob_rad + self.fin * 2 * np.pi / 3 - self.finger * np.pi
        return (Y_ENGAGED_M * np.cos(phi) + self.sign * CONTACT_OFFSET_M) / np.sin(phi)

    def _plan(self, knob: float, err: float) -> bool:
        self.sign = 1.0 if err > 0 else -1.0  # + turn: the tip pushes towards its −x (base angle grows)
        fits = []
        for finger in (0, 1):  # finger 1 is finger 0 turned by 180°
            for fin in range(3):
                phi = float(np.mod(knob + fin * 2 * np.pi / 3 - finger * np.pi, 2 * np.pi))
                if WINDOW_RAD[0] <= phi <= WINDOW_RAD[1]:
                    room = WINDOW_RAD[1] - phi if err > 0 else phi - WINDOW_RAD[0]
                    fits.append((min(abs(err), room), finger, fin))
        if not fits:
            return False
        gain, self.finger, self.fin = max(fits)
        self.stroke_end = knob + self.sign * gain
        return True

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        q, dq, knob, err = obs[0:4], obs[4:8], float(np.arctan2(obs[8], obs[9])), float(obs[13])
        target = np.array([0.0, Q2_RETRACTED_RAD, 0.0, Q2_RETRACTED_RAD])
        self.t += 1
        if self.phase == "plan" and abs(err) > 0.05 and self._plan(knob, err):
            self.phase, self.t = "swing", 0
        if self.phase != "plan":
            i = 2 * self.finger
            self.touched |= bool(obs[14 + self.finger])
            if self.phase == "swing":  # behind the fin folded out, then fold in
                self.x = self._tip_x(knob) + self.sign * 0.006
                target[i + 1] = Q2_ENGAGED_RAD if self.t > 8 else Q2_RETRACTED_RAD
                if self.t > 16:
                    self.phase, self.t = "push", 0
            elif self.phase == "push":
                target[i + 1] = Q2_ENGAGED_RAD
                stroke_left = float(wrap_angle(self.stroke_end - knob))
                aim = knob + err if abs(err) <= abs(stroke_left) else self.stroke_end
                self.x += float(np.clip(self._tip_x(aim) - self.x, -self.speed_m, self.speed_m))
                if (abs(stroke_left) < 0.03 and abs(err) > 0.08) or self.t > 120:
                    self.phase, self.t = "retract", 0
            elif self.t > 6:  # retracted: plan the next stroke
                self.phase = "plan"
            target[i] = np.arcsin(np.clip(-self.x / L_EFF_M, -0.9, 0.9))
        tau_nm = self.kp * (target - q) - self.kd * dq
        return np.clip(tau_nm / KNOB_SPEC.action.limits_nm, -1, 1).astype(np.float32)


def _run(env: KnobEnv, policy: GaitTurner, obs: np.ndarray, steps: int) -> tuple[bool, dict]:
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(policy(obs))
        if terminated or truncated:
            break
    return terminated, info


@pytest.mark.parametrize("start_deg, turn_deg", [(0, 30), (0, -30), (-45, 30), (50, -30)])
def test_scripted_finger_turns_knob_by_30_degrees(env, start_deg, turn_deg):
    start, goal = np.deg2rad(start_deg), np.deg2rad(start_deg + turn_deg)
    obs, _ = env.reset(seed=0, options={"start_angle": start, "goal_angle": goal})
    assert abs(obs[13] - np.deg2rad(turn_deg)) < 1e-5
    policy = GaitTurner()
    terminated, info = _run(env, policy, obs, 100)
    assert policy.touched, "the fingertip never touched the knob"
    assert terminated and info["is_success"] and info["consecutive_successes"] == 1
    assert abs(info["angle_error_rad"]) < 0.1
    assert info["reward_terms"]["success"] == 50.0


def test_scripted_gait_solves_full_tasks():
    """The real task (120°–180° turns) is feasible within 400 steps with re-grasps: the scripted gait does it."""
    env = gym.make("s2r/Knob-v0")
    try:
        for seed in range(3):
            obs, _ = env.reset(seed=seed)
            assert abs(obs[13]) > 2.0
            terminated, info = _run(env, GaitTurner(), obs, 400)
            assert terminated and info["is_success"], f"seed {seed}: error {info['angle_error_rad']:.2f} rad"
    finally:
        env.close()


def test_memoryless_gait_solves_full_tasks():
    """The memoryless expert (a pure function of the observation, for imitation) solves the real task too."""
    env = gym.make("s2r/Knob-v0")
    try:
        for seed in range(8):
            obs, _ = env.reset(seed=seed)
            for _ in range(400):
                obs, _, terminated, truncated, info = env.step(gait_action(obs))
                if terminated or truncated:
                    break
            assert terminated and info["is_success"], f"seed {seed}: error {info['angle_error_rad']:.2f} rad"
    finally:
        env.close()


def _goals_in_a_row(expert, seeds: range, params: dict | None = None) -> list[int]:
    """Goals ``expert`` reaches in a row in one 400-step (8 s) continuous-goal episode per seed, on ``params``."""
    env = KnobEnv(continuous_goals=True)
    try:
        goals = []
        for seed in seeds:
            obs, _ = env.reset(seed=seed, options={"params": params} if params else None)
            for _ in range(400):
                obs, _, terminated, truncated, info = env.step(expert(obs))
                if terminated or truncated:
                    break
            goals.append(info["consecutive_successes"])
    finally:
        env.close()
    return goals


def test_fast_gait_turns_more_goals_in_a_row():
    """fast_gait_action leads the fin further: on the same seeds it reaches more goals in 400 steps (8 s)."""
    goals = {expert: _goals_in_a_row(expert, range(4)) for expert in (gait_action, fast_gait_action)}
    assert min(goals[fast_gait_action]) >= 2 and sum(goals[fast_gait_action]) > sum(goals[gait_action])


@pytest.mark.parametrize("delay", [{"action_latency": 0.02}, {"sensor_delay": 0.02}])
def test_fast_gait_turns_goals_in_a_row_under_delay(delay):
    """The fast gait stops its pushes short of the goal: with 20 ms of actuation latency or sensor delay a delayed
    push's overshoot stays inside the tolerance, and every episode reaches two goals in a row in 8 s."""
    goals = _goals_in_a_row(fast_gait_action, range(8), delay)
    assert min(goals) >= 2, goals


@given(st.lists(st.floats(-20.0, 20.0), min_size=20, max_size=20))
def test_fast_gait_saturates_below_the_limit(values):
    """Whatever the (finite) observation, the fast gait's command stays inside its soft limit."""
    obs = np.array(values, dtype=np.float32)
    action = fast_gait_action(obs)
    assert FAST.soft_limit is not None and np.all(np.abs(action) <= FAST.soft_limit)


def test_predictive_gait_reads_the_knob_one_period_ahead(env):
    """predictive_gait_action is fast_gait_action on the knob angle and error moved by knob speed × one control
    period: the same action when the knob is still, the caller's observation untouched."""
    obs, _ = env.reset(seed=5)
    still = obs.copy()
    still[10] = 0.0
    np.testing.assert_allclose(predictive_gait_action(still), fast_gait_action(still), atol=1e-6)
    moving = obs.copy()
    moving[10] = 2.0  # rad/s: 0.04 rad in one 20 ms period
    shifted = moving.copy()
    ahead_rad = 2.0 / KNOB_SPEC.control_hz
    knob = np.arctan2(moving[8], moving[9]) + ahead_rad
    shifted[8], shifted[9], shifted[13] = np.sin(knob), np.cos(knob), _wrap(float(moving[13]) - ahead_rad)
    before = moving.copy()
    np.testing.assert_allclose(predictive_gait_action(moving), fast_gait_action(shifted), atol=1e-5)
    np.testing.assert_array_equal(moving, before)


def test_predictive_gait_holds_up_under_latency():
    """With 30 ms of actuation latency (1.5 control periods) the look-ahead reaches at least as many goals in a row
    as the fast gait it reads ahead for, on the same seeds, and at least one goal in 19 of 20 episodes."""
    goals = {e: _goals_in_a_row(e, range(20), {"action_latency": 0.03}) for e in (fast_gait_action, predictive_gait_action)}
    assert sum(goals[predictive_gait_action]) >= sum(goals[fast_gait_action])
    assert sum(g >= 1 for g in goals[predictive_gait_action]) >= 19  # is_success: at least one goal


def test_memoryless_gait_is_a_pure_function_of_the_observation(env):
    """Same observation → same action, whatever came before: replaying an episode's observations in reverse order
    gives the actions of the episode."""
    obs, _ = env.reset(seed=3)
    seen, actions = [], []
    for _ in range(150):
        seen.append(obs)
        actions.append(gait_action(obs))
        obs, *_ = env.step(actions[-1])
    replay = [gait_action(o) for o in reversed(seen)][::-1]
    np.testing.assert_array_equal(np.array(replay), np.array(actions))
    assert all(a.shape == (4,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1.0) for a in actions)
    assert np.ptp(np.array(actions), axis=0).min() > 0.5  # it does move every joint
    with pytest.raises(ValueError, match=r"observation of shape \(20,\), got shape \(16,\)"):
        gait_action(obs[:16])


def test_zero_torque_leaves_knob_alone(env):
    obs0, _ = env.reset(seed=4)
    for _ in range(50):
        obs, *_ = env.step(np.zeros(4, dtype=np.float32))
    # fingers hang folded out, clear of the fins: the knob does not move, nothing touches it
    np.testing.assert_allclose(obs[8:10], obs0[8:10], atol=1e-6)
    assert obs[14] == obs[15] == 0.0
    assert np.all(np.abs(obs[4:8]) < 0.05)


# ------------------------------------------------------------------------------------------- api
def test_check_env_passes():
    for kwargs in ({}, {"continuous_goals": True}):
        e = gym.make("s2r/Knob-v0", **kwargs)
        try:
            check_env(e.unwrapped, skip_render_check=True)
        finally:
            e.close()


def test_registered_with_400_step_limit():
    e = gym.make(sim.resolve_env_id("knob"))
    try:
        assert e.spec.max_episode_steps == 400
        e.reset(seed=0)
        zero = np.zeros(4, dtype=np.float32)
        for t in range(400):
            _, _, terminated, truncated, info = e.step(zero)
            assert not terminated
            assert truncated == (t == 399)
        assert info["is_success"] is False and info["consecutive_successes"] == 0
    finally:
        e.close()


def test_obs_layout_and_sensor_frame(env):
    obs, info = env.reset(seed=3, options={"params": {"encoder_noise": 0.01, "knob_encoder_noise": 0.02}})
    assert obs.shape == (KNOB_SPEC.obs_dim,) == (20,) and obs.dtype == np.float32
    assert info["params"]["knob_encoder_noise"] == 0.02 and set(info["params"]) == set(KNOB_PARAMS.names)
    rng = np.random.default_rng(0)
    for _ in range(5):
        action = rng.uniform(-1.5, 1.5, 4).astype(np.float32)
        obs, *_ = env.step(action)
        np.testing.assert_array_equal(obs, KNOB_SPEC.build_obs(env.sensor_frame(), env.prev_action))
        np.testing.assert_allclose(obs[16:20], np.clip(action, -1, 1), atol=1e-6)  # prev action, clipped
    frame = env.sensor_frame()
    knob, goal = float(frame.aux[0]), float(frame.aux[2])
    assert obs[13] == pytest.approx(float(wrap_angle(goal - knob)), abs=1e-5)
    np.testing.assert_allclose(np.hypot(obs[8], obs[9]), 1.0, atol=1e-6)


def test_start_and_goal_distribution(env):
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        knob, goal = (float(x) for x in env.sensor_frame().aux[[0, 2]])
        assert abs(knob) <= np.deg2rad(60) + 1e-6
        assert np.deg2rad(120) - 1e-5 <= abs(obs[13]) <= np.pi  # 180° ± 60° away: 120°–180° the short way
        assert goal == pytest.approx(env.goal_angle, abs=1e-5)


@pytest.mark.parametrize("scale", [0.1, 0.5, 0.9])
def test_goal_distance_scale_brings_goals_nearer_both_ways(env, scale):
    """A curriculum's goal distance: the task's shorter turn (120°–180°, either way) times the scale."""
    signs = set()
    for seed in range(20):
        obs, _ = env.reset(seed=seed, options={"params": {"goal_distance_scale": scale}})
        assert scale * np.deg2rad(120) - 1e-5 <= abs(obs[13]) <= scale * np.pi + 1e-5
        signs.add(np.sign(obs[13]))
    assert signs == {-1.0, 1.0}


def test_progress_term_is_potential_based_across_goal_switches():
    """The ``rl`` preset's progress term pays w · (|e| before − |e| after) each step, so an episode sums to the
    error removed; when continuous goals draw a new target the potential restarts at the new error (no penalty
    for the jump). The default reward has no such term."""
    env = KnobEnv(continuous_goals=True, reward="rl")
    w = env.reward_weights.progress
    try:
        env.reset(seed=0, options={"start_angle": -0.2, "goal_angle": -0.15})
        rng, before, switches = np.random.default_rng(0), 0.05, 0
        for _ in range(60):
            _, _, _, _, info = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            after, paid = abs(info["angle_error_rad"]), info["reward_terms"]["progress"]
            assert info["reward_terms"]["distance"] == 0.0
            if info["reward_terms"]["success"]:  # reached: paid up to an error under the success tolerance
                switches += 1
                assert w * (before - 0.1) <= paid <= w * before + 1e-9
            else:
                assert paid == pytest.approx(w * (before - after), abs=1e-9)
            before = after
        assert switches >= 1
    finally:
        env.close()
    plain = KnobEnv()
    try:
        plain.reset(seed=0)
        assert "progress" not in plain.step(np.zeros(4, dtype=np.float32))[4]["reward_terms"]
    finally:
        plain.close()


def test_progress_term_by_hand():
    env = KnobEnv(reward="rl")
    try:
        obs, _ = env.reset(seed=3, options={"params": {"goal_distance_scale": 0.2}})
        before = abs(obs[13])  # nominal sensors: the observed error is the true one
        obs, *_, info = env.step(np.array([0.5, -0.5, 0.5, -0.5], dtype=np.float32))
        expected = env.reward_weights.progress * (before - abs(info["angle_error_rad"]))
        assert info["reward_terms"]["progress"] == pytest.approx(expected, abs=1e-4)
    finally:
        env.close()


def _trajectory(seed: int, params: dict | None = None, steps: int = 120) -> np.ndarray:
    e = gym.make("s2r/Knob-v0")
    rng = np.random.default_rng(123)
    obs, _ = e.reset(seed=seed, options={"params": params} if params else None)
    out = [obs]
    for _ in range(steps):
        obs, reward, *_ = e.step(rng.uniform(-1, 1, 4).astype(np.float32))
        out.append(np.append(obs, reward))
    e.close()
    return np.array(out[1:])


def test_same_seed_same_trajectory():
    noisy = {
        "encoder_noise": 0.01,
        "knob_encoder_noise": 0.01,
        "action_latency": 0.02,
        "control_jitter": 0.002,
    }
    a, b = _trajectory(7, noisy), _trajectory(7, noisy)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, _trajectory(8, noisy))
    assert not np.array_equal(a, _trajectory(7, {**noisy, "knob_inertia_scale": 2.5}))


def test_reset_with_same_seed_replays_on_one_env(env):
    """No state leaks from one episode into the next (contacts, jittered time step, knob friction)."""

    def run() -> np.ndarray:
        obs, _ = env.reset(seed=11, options={"params": {"control_jitter": 0.004, "knob_friction": 0.05}})
        rng, out = np.random.default_rng(1), [obs]
        for _ in range(60):
            out.append(env.step(rng.uniform(-1, 1, 4).astype(np.float32))[0])
        return np.array(out)

    first = run()
    env.reset(seed=99, options={"params": {"finger_mass_scale": 2.0}})  # an episode in between, other physics
    np.testing.assert_array_equal(first, run())


def test_rgb_array_render_is_headless_and_deterministic():
    frames = []
    for _ in range(2):
        e = KnobEnv(render_mode="rgb_array")
        e.reset(seed=2)
        frames.append(e.render())
        e.close()
    assert frames[0].shape == (320, 320, 3) and frames[0].dtype == np.uint8
    assert frames[0].std() > 10  # something is drawn
    np.testing.assert_array_equal(frames[0], frames[1])


# ------------------------------------------------------------------------------------- success bookkeeping
def test_success_needs_hold_and_terminates_single_goal(env):
    env.reset(seed=0, options={"start_angle": 0.3, "goal_angle": 0.3 + 0.05})
    zero = np.zeros(4, dtype=np.float32)
    for t in range(1, HOLD_STEPS + 1):
        _, reward, terminated, _, info = env.step(zero)
        terms = info["reward_terms"]
        assert terms["near"] == (10.0 if t == 1 else 0.0)  # once per goal
        assert terms["distance"] == pytest.approx(-5 * 0.05, abs=1e-4)
        assert reward == pytest.approx(sum(terms.values()))
        assert terminated == (t == HOLD_STEPS) and info["is_success"] == (t == HOLD_STEPS)
    assert terms["success"] == 50.0 and info["consecutive_successes"] == 1


def test_continuous_goals_count_successes_and_redraw(env):
    env.continuous_goals = True
    env.reset(seed=0, options={"start_angle": -0.2, "goal_angle": -0.2})
    zero = np.zeros(4, dtype=np.float32)
    for _ in range(HOLD_STEPS):
        obs, reward, terminated, truncated, info = env.step(zero)
    assert not terminated and not truncated
    assert (
        info["consecutive_successes"] == 1 and info["is_success"] and reward == pytest.approx(50.0, abs=0.01)
    )
    assert abs(info["angle_error_rad"]) >= np.deg2rad(120) - 1e-6  # a new, distant goal
    assert obs[13] == pytest.approx(info["angle_error_rad"], abs=1e-5)
    for _ in range(HOLD_STEPS):
        _, _, terminated, _, info = env.step(zero)
    assert not terminated and info["consecutive_successes"] == 1 and info["reward_terms"]["near"] == 0.0
    env.reset(seed=1)
    assert env.step(zero)[4]["consecutive_successes"] == 0  # the count is per episode


def test_leaving_the_goal_resets_the_hold(env):
    env.reset(seed=0, options={"start_angle": 0.0, "goal_angle": 0.0})
    zero = np.zeros(4, dtype=np.float32)
    for _ in range(HOLD_STEPS - 1):
        env.step(zero)
    env._plant._bc.resetJointState(env._plant._knob, 0, 0.5, 0.0)  # knock the knob away for one step
    assert env.step(zero)[2] is False
    env._plant._bc.resetJointState(env._plant._knob, 0, 0.0, 0.0)
    results = [env.step(zero)[2] for _ in range(HOLD_STEPS)]
    assert results == [False] * (HOLD_STEPS - 1) + [True]


# ---------------------------------------------------------------------------------------------- params
def test_unknown_parameter_is_rejected_with_names(env):
    with pytest.raises(ValueError, match="unknown physical parameter 'gravity'.*knob_friction"):
        env.reset(options={"params": {"gravity": 3.0}})


@pytest.mark.parametrize(
    "name, value", [("knob_friction", -0.1), ("fingertip_friction", 5.0), ("action_latency", 1.0)]
)
def test_out_of_limit_parameter_names_its_range(env, name, value):
    p = KNOB_PARAMS[name]
    with pytest.raises(ValueError, match=rf"'{name}' = .* outside its hard limits \[{p.low:g}, {p.high:g}\]"):
        env.reset(options={"params": {name: value}})


def test_issue_parameters_exist():
    for name in ("knob_friction", "knob_damping", "knob_inertia_scale", "fingertip_friction", "finger_mass_scale",
                 "motor_strength", "joint_damping", "action_latency", "encoder_noise", "encoder_bias",
                 "knob_encoder_noise"):  # fmt: skip
        assert name in KNOB_PARAMS


def test_non_finite_action_is_rejected(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step(np.array([0.0, np.nan, 0.0, 0.0], dtype=np.float32))
    with pytest.raises(ValueError, match="4 finite values"):
        env.step_torque(np.array([0.0, 0.0, np.inf, 0.0]))


def test_step_torque_matches_step(env):
    """step(a) is step_torque(KNOB_SPEC.action.to_torque_nm(a)) bit for bit, out-of-range actions included."""
    actions = np.random.default_rng(4).uniform(-1.5, 1.5, (30, 4)).astype(np.float32)
    env.reset(seed=5)
    via_step = [env.step(a)[0] for a in actions]
    env.reset(seed=5)
    via_torque = [env.step_torque(KNOB_SPEC.action.to_torque_nm(a))[0] for a in actions]
    np.testing.assert_array_equal(np.array(via_step), np.array(via_torque))


def test_weak_motors_on_a_sticky_knob_fail(env):
    """Parameters reach the physics: 30 % motors (≤ 0.09 N·m at the knob) cannot beat 0.2 N·m of knob friction."""
    params = {"knob_friction": 0.2, "motor_strength": 0.3}
    obs, _ = env.reset(seed=0, options={"start_angle": 0.0, "goal_angle": np.deg2rad(30), "params": params})
    policy = GaitTurner()
    terminated, info = _run(env, policy, obs, 100)
    assert policy.touched and not terminated and abs(info["angle_error_rad"]) > 0.3


def test_parameter_corners_stay_stable(env):
    """Every hard-limit corner ADR may reach integrates stably: finite observations, bounded speeds."""
    rng = np.random.default_rng(0)
    for corner in range(6):
        params = {q.name: (q.low, q.high)[int(rng.integers(2))] for q in KNOB_PARAMS}
        env.reset(seed=corner, options={"params": params})
        for _ in range(80):
            obs, *_ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            assert np.all(np.isfinite(obs)), params
        truth = env._plant.read_state()
        assert np.all(np.abs(truth.dq) < 30.0) and abs(truth.knob_dq) < 40.0, params


def test_bad_pinned_angle_is_rejected(env):
    with pytest.raises(ValueError, match="'goal_angle' must be a finite angle in rad"):
        env.reset(options={"goal_angle": "north"})


@given(st.floats(-1e4, 1e4))
def test_scalar_wrap_matches_spec_wrap(angle):
    assert _wrap(angle) == pytest.approx(float(wrap_angle(angle)), abs=1e-9)
    assert -np.pi <= _wrap(angle) < np.pi
