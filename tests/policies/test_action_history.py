"""The action history is part of the policy: the training wrapper, the torch HistoryPolicy (behind the action
filter) and the exported ONNX graph see the same last actions and command the same torques over a seeded episode;
a history run trains, evaluates, exports and warm-starts; bad settings are one-line errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import sim  # noqa: F401  (registers the envs)
from deploy.bundle import Policy, load_bundle
from deploy.export import export_bundle
from policies.action_filter import FilteredPolicy
from policies.action_history import ActionHistory, HistoryPolicy, push
from policies.checkpoint import inference_policy_from_checkpoint
from policies.networks import GaussianActor
from policies.train import TrainConfig
from policies.vec_env import make_env
from sim.errors import UserError
from sim.robots import get_robot

K = 2
CUTOFF_HZ = 6.0


def _ckpt(seed: int = 0, k: int = K, cutoff_hz: float = CUTOFF_HZ) -> dict:
    spec = get_robot("biped")
    n_act = spec.action.n
    n_in = spec.obs_dim + k * n_act
    torch.manual_seed(seed)
    actor = GaussianActor(n_in, n_act, [32, 32])
    for p in actor.net.parameters():  # a lively policy: the default PPO head outputs ~0
        torch.nn.init.normal_(p, 0.0, 0.35)
    rng = np.random.default_rng(seed)
    return {"env_id": "s2r/Biped-v0", "robot_id": "biped", "obs_dim": n_in, "act_dim": n_act,
            "actor_arch": {"kind": "gaussian", "obs_dim": n_in, "act_dim": n_act, "hidden": [32, 32],
                           "activation": "tanh"},
            "actor": actor.state_dict(),
            "config": {"algo": "ppo", "action_filter_hz": cutoff_hz, "action_history": k},
            "normalizer": {"mean": rng.normal(0, 0.1, n_in), "var": rng.uniform(0.5, 2, n_in), "clip": 10.0,
                           "eps": 1e-8, "std_floor": np.concatenate([spec.obs_resolution, [1e-3] * k * n_act])}}  # fmt: skip


@given(arrays(np.float32, 6, elements=st.floats(-1, 1, width=32)),
       arrays(np.float32, 2, elements=st.floats(-1e3, 1e3, width=32)))  # fmt: skip
def test_numpy_and_torch_push_the_same_clipped_action_in_front(history, action):
    h_np = push(history, action)
    inner = _Echo(action)
    policy = HistoryPolicy(inner, 3)
    _, h_torch = policy(torch.zeros(1, 4), torch.as_tensor(history)[None])
    assert h_np.dtype == np.float32 and h_np.shape == (6,)
    np.testing.assert_array_equal(h_np[:2], np.clip(action, -1, 1))
    np.testing.assert_array_equal(h_np[2:], history[:4])
    np.testing.assert_array_equal(h_np, h_torch[0].numpy())


class _Echo(torch.nn.Module):
    """A stand-in inner policy (4 sensors, 2 actions, history of 3) that returns a fixed action."""

    obs_dim, act_dim = 4 + 3 * 2, 2

    def __init__(self, action: np.ndarray) -> None:
        super().__init__()
        self.action = torch.as_tensor(action)[None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape == (1, self.obs_dim)
        return self.action


def test_errors_are_one_line():
    with pytest.raises(UserError, match="--action-history must be 1 to 8"):
        make_env("biped", action_history=9)
    with pytest.raises(UserError, match="for feed-forward policies"):
        TrainConfig(env="biped", algo="rppo", action_history=1)
    with pytest.raises(UserError, match="do not combine"):
        TrainConfig(env="biped", algo="ppo", action_history=1, gait_clock_hz=1.5)


def test_checkpoint_with_a_history_is_a_history_policy_behind_its_filter():
    policy = inference_policy_from_checkpoint(_ckpt())
    assert isinstance(policy, FilteredPolicy) and isinstance(policy.policy, HistoryPolicy)
    assert policy.STATE_NAMES == ("action_history", "action_filter")
    assert policy.obs_dim == get_robot("biped").obs_dim  # the sensors' observation: the history is inside
    bare = inference_policy_from_checkpoint(_ckpt(cutoff_hz=0.0))
    assert isinstance(bare, HistoryPolicy) and bare.state_shapes() == {"action_history": [K * 4]}


def test_wrapper_torch_and_onnx_histories_agree_over_a_seeded_episode(tmp_path, side_by_side):
    """Training (ActionHistory outside LowPassAction, fed the network's raw action on the observation with its
    history) and evaluation (the checkpoint's policy in torch, on the sensors' observation, carrying the history as
    state) play the same seeded episodes; the exported bundle in onnxruntime (state carried by the controller's
    Policy) commands the same torques."""
    policy = inference_policy_from_checkpoint(_ckpt())
    assert isinstance(policy, FilteredPolicy)
    export_bundle(policy, tmp_path / "b", n_random=500)
    train_env = make_env("biped", action_history=K, action_filter_hz=CUTOFF_HZ)
    assert isinstance(train_env, ActionHistory)
    eval_env = gym.make("s2r/Biped-v0")
    n_hist, starts = K * 4, []

    def before(obs_train: np.ndarray, obs_eval: np.ndarray, state: tuple) -> None:
        np.testing.assert_allclose(obs_train[:-n_hist], obs_eval, atol=1e-4)
        np.testing.assert_allclose(obs_train[-n_hist:], state[0][0].numpy(), atol=1e-6)  # the torch policy's state
        starts.append(not obs_train[-n_hist:].any())

    try:  # policy.policy.policy: the network and normalizer behind history and filter
        c_sent, c_torch, c_onnx = side_by_side(policy, policy.policy.policy, train_env, eval_env,
                                               Policy(load_bundle(tmp_path / "b")), before=before)  # fmt: skip
        assert np.max(np.abs(c_sent - c_torch)) < 1e-6 and np.max(np.abs(c_torch - c_onnx)) < 1e-5
        assert starts[0] and sum(starts) < len(starts) / 4  # empty at an episode's start, then filled
    finally:
        train_env.close()
        eval_env.close()


def test_a_history_run_trains_evaluates_and_exports(tmp_path):
    """A (tiny) run trained with --action-history 2 has 24 + 8 actor inputs; its evaluation and its bundle run on
    the robot's 24 sensor values with the history as policy state."""
    from policies.train import train

    cfg = TrainConfig(env="biped", algo="ppo", steps=512, seed=0, action_history=K, num_envs=1, tensorboard=False)
    train(cfg, tmp_path / "run")
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=False)
    spec = get_robot("biped")
    assert ckpt["actor_arch"]["obs_dim"] == spec.obs_dim + K * spec.action.n
    policy = inference_policy_from_checkpoint(ckpt)
    assert isinstance(policy, HistoryPolicy) and policy.obs_dim == spec.obs_dim
    manifest = export_bundle(policy, tmp_path / "b", n_random=200)
    assert [s["input"] for s in manifest["model"]["state"]] == ["action_history"]


def test_warm_start_from_a_history_bundle_takes_the_actor_behind_history_and_filter(tmp_path, warm_start_takes_the_actor):
    """A bundle whose state is its action history and action filter warm-starts a training with the same history:
    the actor (24 + 8 inputs) behind both is loaded; a training without a history (24 inputs) does not fit it."""
    warm_start_takes_the_actor(_ckpt(seed=4), K * 4, tmp_path / "b")
