"""The action filter is part of the policy: the training wrapper, the torch FilteredPolicy and the exported ONNX
graph give the same motor commands over a seeded episode; a checkpoint trained with a filter evaluates and exports
with it; bad settings are one-line errors."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import sim  # noqa: F401  (registers the envs)
from deploy.bundle import Policy, load_bundle
from deploy.export import export_bundle
from policies.action_filter import FilteredPolicy, LowPassAction, lowpass_alpha
from policies.checkpoint import InferencePolicy, inference_policy_from_checkpoint
from policies.networks import GaussianActor
from policies.train import TrainConfig
from policies.vec_env import make_env
from sim.errors import UserError
from sim.robots import get_robot

CUTOFF_HZ = 6.0


def _ckpt(seed: int = 0, cutoff_hz: float = CUTOFF_HZ) -> dict:
    spec = get_robot("biped")
    torch.manual_seed(seed)
    actor = GaussianActor(spec.obs_dim, spec.action.n, [32, 32])
    for p in actor.net.parameters():  # a lively policy: the default PPO head outputs ~0
        torch.nn.init.normal_(p, 0.0, 0.5)
    rng = np.random.default_rng(seed)
    return {"env_id": "s2r/Biped-v0", "robot_id": "biped", "obs_dim": spec.obs_dim, "act_dim": spec.action.n,
            "actor_arch": {"kind": "gaussian", "obs_dim": spec.obs_dim, "act_dim": spec.action.n, "hidden": [32, 32],
                           "activation": "tanh"},
            "actor": actor.state_dict(), "config": {"algo": "ppo", "action_filter_hz": cutoff_hz},
            "normalizer": {"mean": rng.normal(0, 0.1, spec.obs_dim), "var": rng.uniform(0.5, 2, spec.obs_dim),
                           "clip": 10.0, "eps": 1e-8, "std_floor": spec.obs_resolution}}  # fmt: skip


def test_alpha_and_errors():
    assert lowpass_alpha(6.0, 50.0) == pytest.approx(1 - math.exp(-2 * math.pi * 6 / 50), rel=1e-6)
    with pytest.raises(UserError, match="must be > 0"):
        lowpass_alpha(-1.0, 50.0)
    with pytest.raises(UserError, match="needs an s2r robot env"):
        make_env("Pendulum-v1", action_filter_hz=5.0)
    with pytest.raises(UserError, match="lstm-td3 has its own memory"):
        TrainConfig(env="biped", algo="lstm-td3", action_filter_hz=5.0)
    with pytest.raises(UserError, match="not a JSON object"):
        TrainConfig(env="biped", env_options="{reward: smooth}")


def test_checkpoint_with_filter_is_a_filtered_policy():
    policy = inference_policy_from_checkpoint(_ckpt())
    assert isinstance(policy, FilteredPolicy) and policy.cutoff_hz == CUTOFF_HZ
    assert isinstance(inference_policy_from_checkpoint(_ckpt(cutoff_hz=0.0)), InferencePolicy)


def test_wrapper_torch_and_onnx_filters_agree_over_a_seeded_episode(tmp_path, side_by_side):
    """Training (LowPassAction around the env, fed the network's raw action) and evaluation (FilteredPolicy in
    torch) play the same seeded episode; the exported bundle in onnxruntime (state carried by the controller's
    Policy), fed that episode's observations, commands the same torques at every step."""
    filtered = inference_policy_from_checkpoint(_ckpt())
    assert isinstance(filtered, FilteredPolicy)
    export_bundle(filtered, tmp_path / "b", n_random=500)
    train_env = make_env("biped", action_filter_hz=CUTOFF_HZ)
    assert isinstance(train_env, LowPassAction)
    eval_env = gym.make("s2r/Biped-v0")

    def after(obs_train: np.ndarray, obs_eval: np.ndarray, info: dict) -> None:
        np.testing.assert_allclose(obs_train, obs_eval, atol=1e-4)

    try:  # one episode, seed 11
        c_sent, c_torch, c_onnx = side_by_side(filtered, filtered.policy, train_env, eval_env,
                                               Policy(load_bundle(tmp_path / "b")), after=after, min_steps=21,
                                               seeds=(11,), max_steps=200)  # fmt: skip
        assert len(c_sent) > 20
        assert np.max(np.abs(c_sent - c_torch)) < 1e-6 and np.max(np.abs(c_torch - c_onnx)) < 1e-5
        assert np.max(np.abs(np.diff(c_torch, axis=0))) <= 2 * lowpass_alpha(CUTOFF_HZ, 50.0) + 1e-6  # smoothed
    finally:
        train_env.close()
        eval_env.close()


def test_warm_start_from_a_bundle_reproduces_its_actions(tmp_path):
    """--init-policy BUNDLE: the training's actor and (frozen) normalizer start as the bundle's policy."""
    from policies.normalizer import ObsNormalizer
    from policies.warm_start import warm_start

    source = inference_policy_from_checkpoint(_ckpt(seed=3, cutoff_hz=0.0))
    export_bundle(source, tmp_path / "b", n_random=200)
    spec = get_robot("biped")
    actor = GaussianActor(spec.obs_dim, spec.action.n, [32, 32])
    norm = ObsNormalizer(spec.obs_dim, std_floor=spec.obs_resolution)
    warm_start(actor, norm, tmp_path / "b")
    assert norm.frozen
    obs = np.random.default_rng(0).normal(0, 1, (64, spec.obs_dim)).astype(np.float32)
    with torch.no_grad():
        ours = actor.deterministic(torch.as_tensor(norm(obs))).numpy()
        theirs = source(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    with pytest.raises(UserError, match="does not fit"):
        warm_start(GaussianActor(spec.obs_dim, spec.action.n, [16]), norm, tmp_path / "b")


def test_warm_start_from_a_filtered_bundle_takes_the_actor_behind_the_filter(tmp_path):
    """A bundle whose only state is its action filter (the shipped biped) warm-starts an MLP training: the actor
    behind the filter is loaded (the training runs its own --action-filter-hz); a bundle with memory does not."""
    from policies.normalizer import ObsNormalizer
    from policies.warm_start import warm_start

    ckpt = _ckpt(seed=4, cutoff_hz=CUTOFF_HZ)
    export_bundle(inference_policy_from_checkpoint(ckpt), tmp_path / "f", n_random=200)
    spec = get_robot("biped")
    actor = GaussianActor(spec.obs_dim, spec.action.n, [32, 32])
    warm_start(actor, ObsNormalizer(spec.obs_dim, std_floor=spec.obs_resolution), tmp_path / "f")
    for name, value in actor.state_dict().items():
        if name != "log_std":
            assert torch.equal(value, ckpt["actor"][name]), name
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    manifest["model"]["state"].append({"input": "h", "output": "h_next", "dtype": "float32", "shape": ["batch", 8],
                                       "initial": [0.0] * 8})  # fmt: skip
    (tmp_path / "f" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="a policy with memory cannot start a feed-forward training"):
        warm_start(actor, ObsNormalizer(spec.obs_dim), tmp_path / "f")
