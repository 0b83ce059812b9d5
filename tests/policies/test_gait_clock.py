"""The gait clock is part of the policy: the training wrapper, the torch ClockedPolicy (behind the action filter)
and the exported ONNX graph see the same phase and command the same torques over a seeded episode; the clock's
reward term follows the feet; bad settings are one-line errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import sim  # noqa: F401  (registers the envs)
from deploy.bundle import Policy, load_bundle
from deploy.export import export_bundle
from policies.action_filter import FilteredPolicy
from policies.checkpoint import inference_policy_from_checkpoint
from policies.gait_clock import N_FEATURES, ClockedPolicy, GaitClock, advance, clock_increment, features
from policies.networks import GaussianActor
from policies.train import TrainConfig
from policies.vec_env import make_env
from sim.biped import BIPED_REWARD_PRESETS, BipedReward
from sim.errors import UserError
from sim.robots import get_robot

CLOCK_HZ = 1.5
CUTOFF_HZ = 6.0


def _ckpt(seed: int = 0, clock_hz: float = CLOCK_HZ, cutoff_hz: float = CUTOFF_HZ) -> dict:
    spec = get_robot("biped")
    n_in = spec.obs_dim + N_FEATURES
    torch.manual_seed(seed)
    actor = GaussianActor(n_in, spec.action.n, [32, 32])
    for p in actor.net.parameters():  # a lively policy: the default PPO head outputs ~0
        torch.nn.init.normal_(p, 0.0, 0.5)
    rng = np.random.default_rng(seed)
    return {"env_id": "s2r/Biped-v0", "robot_id": "biped", "obs_dim": n_in, "act_dim": spec.action.n,
            "actor_arch": {"kind": "gaussian", "obs_dim": n_in, "act_dim": spec.action.n, "hidden": [32, 32],
                           "activation": "tanh"},
            "actor": actor.state_dict(),
            "config": {"algo": "ppo", "action_filter_hz": cutoff_hz, "gait_clock_hz": clock_hz},
            "normalizer": {"mean": rng.normal(0, 0.1, n_in), "var": rng.uniform(0.5, 2, n_in), "clip": 10.0,
                           "eps": 1e-8, "std_floor": np.concatenate([spec.obs_resolution, [1e-3, 1e-3]])}}  # fmt: skip


@given(st.floats(0.0, 1.0, exclude_max=True, width=32), st.floats(0.05, 10.0))
def test_the_phase_stays_in_one_cycle_and_numpy_and_torch_advance_it_alike(phase, clock_hz):
    inc = clock_increment(clock_hz, 50.0)
    p_np = advance(np.float32(phase), inc)
    p_torch = torch.tensor([[phase]], dtype=torch.float32) + inc
    p_torch = p_torch - torch.floor(p_torch)
    assert 0.0 <= p_np < 1.0
    assert float(p_np) == float(p_torch[0, 0])


def test_clock_term_rewards_the_feet_that_follow_their_phase():
    w = BipedReward(gait_clock=0.1, stance_fraction=0.6)
    assert w.clock_term(0.1, (True, False)) == pytest.approx(
        0.2
    )  # left in stance, right (φ + 0.5 = 0.6) swings
    assert w.clock_term(0.1, (False, True)) == pytest.approx(-0.2)
    assert w.clock_term(0.55, (True, True)) == pytest.approx(0.2)  # double support: both stances
    assert w.clock_term(0.8, (False, True)) == pytest.approx(0.2)  # left swings, right (0.3) in stance
    assert BipedReward().clock_term(0.1, (True, False)) == 0.0  # unweighted: off
    assert BIPED_REWARD_PRESETS["clock"].gait_clock > 0
    with pytest.raises(UserError, match="stance_fraction"):
        BipedReward(stance_fraction=1.0)


def test_errors_are_one_line():
    with pytest.raises(UserError, match="below half the control rate"):
        clock_increment(30.0, 50.0)
    with pytest.raises(UserError, match="needs a legged s2r robot env"):
        make_env("knob", gait_clock_hz=1.0)
    with pytest.raises(UserError, match="for feed-forward policies"):
        TrainConfig(env="biped", algo="rppo", gait_clock_hz=1.0)


def test_checkpoint_with_a_clock_is_a_clocked_policy_behind_its_filter():
    policy = inference_policy_from_checkpoint(_ckpt())
    assert isinstance(policy, FilteredPolicy) and isinstance(policy.policy, ClockedPolicy)
    assert policy.STATE_NAMES == ("gait_clock", "action_filter")
    assert policy.obs_dim == get_robot("biped").obs_dim  # the sensors' observation: the clock is inside
    bare = inference_policy_from_checkpoint(_ckpt(cutoff_hz=0.0))
    assert isinstance(bare, ClockedPolicy) and bare.STATE_NAMES == ("gait_clock",)


def test_wrapper_torch_and_onnx_clocks_agree_over_a_seeded_episode(tmp_path, side_by_side):
    """Training (GaitClock inside LowPassAction, fed the network's raw action on the clocked observation) and
    evaluation (the checkpoint's policy in torch, on the sensors' observation) play the same seeded episode; the
    exported bundle in onnxruntime (state carried by the controller's Policy) commands the same torques."""
    policy = inference_policy_from_checkpoint(_ckpt())
    assert isinstance(policy, FilteredPolicy)
    export_bundle(policy, tmp_path / "b", n_random=500)
    train_env = make_env("biped", gait_clock_hz=CLOCK_HZ, action_filter_hz=CUTOFF_HZ, reward="clock")
    assert isinstance(train_env.env, GaitClock)
    eval_env = gym.make("s2r/Biped-v0")
    phases, clock_terms = [], []

    def before(obs_train: np.ndarray, obs_eval: np.ndarray, state: tuple) -> None:
        np.testing.assert_allclose(obs_train[:-N_FEATURES], obs_eval, atol=1e-4)
        np.testing.assert_array_equal(obs_train[-N_FEATURES:], features(float(state[0][0, 0])))
        phases.append(float(state[0][0, 0]))

    try:  # policy.policy.policy: the network and normalizer behind clock and filter
        c_sent, c_torch, c_onnx = side_by_side(
            policy, policy.policy.policy, train_env, eval_env, Policy(load_bundle(tmp_path / "b")), before=before,
            after=lambda _o, _e, info: clock_terms.append(info["reward_terms"]["gait_clock"]))
        assert np.max(np.abs(c_sent - c_torch)) < 1e-6 and np.max(np.abs(c_torch - c_onnx)) < 1e-5
        assert phases[0] == 0.0 and phases[1] == pytest.approx(CLOCK_HZ / 50.0, abs=1e-6)
        assert set(np.round(np.abs(clock_terms), 6)) <= {0.0, 0.1}  # ±0.05 per foot (the 'clock' preset)
    finally:
        train_env.close()
        eval_env.close()


def test_a_clock_training_run_evaluates_and_exports_with_its_clock(tmp_path):
    """A (tiny) run trained with --gait-clock-hz has 26 actor inputs; its evaluation and its bundle run on the
    robot's 24 sensor values with the clock as policy state."""
    from policies.train import train

    cfg = TrainConfig(env="biped", algo="ppo", steps=512, seed=0, gait_clock_hz=CLOCK_HZ, num_envs=1,
                      env_options='{"reward": "clock"}', tensorboard=False)  # fmt: skip
    train(cfg, tmp_path / "run")
    policy = inference_policy_from_checkpoint(torch.load(tmp_path / "run" / "checkpoints" / "latest.pt",
                                                         weights_only=False))  # fmt: skip
    assert isinstance(policy, ClockedPolicy) and policy.obs_dim == get_robot("biped").obs_dim
    manifest = export_bundle(policy, tmp_path / "b", n_random=200)
    assert [s["input"] for s in manifest["model"]["state"]] == ["gait_clock"]


def test_warm_start_from_a_clocked_bundle_takes_the_actor_behind_clock_and_filter(tmp_path, warm_start_takes_the_actor):
    """A bundle whose state is its gait clock and action filter warm-starts a training with a clock: the actor
    (26 inputs) behind both is loaded; a training without a clock (24 inputs) does not fit it."""
    warm_start_takes_the_actor(_ckpt(seed=4), N_FEATURES, tmp_path / "b")
