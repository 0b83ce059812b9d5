"""Each learner solves a 2-D identity bandit (action = observation) in seconds, through the real training loop,
and the saved policy (loaded as the exporter loads it) reproduces what was learned."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.registration import register, registry

from policies.checkpoint import load_inference_policy
from policies.ppo import PPOConfig
from policies.td3 import TD3Config, ddpg
from policies.train import TrainConfig, train

ENV_ID = "s2rtest/Identity-v0"


class IdentityEnv(gym.Env):
    """One-step bandit: observe a target in [-0.8, 0.8]², reward −‖a − target‖², then terminate."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.target = self.np_random.uniform(-0.8, 0.8, 2).astype(np.float32)
        return self.target.copy(), {}

    def step(self, action):
        reward = -float(np.sum((np.asarray(action) - self.target) ** 2))
        return self.target.copy(), reward, True, False, {}


if ENV_ID not in registry:
    register(id=ENV_ID, entry_point=IdentityEnv)

FAST_TD3 = TD3Config(hidden=(32, 32), learning_starts=200, batch_size=64, buffer_size=5000, lr_actor=3e-3,
                     lr_critic=3e-3, tau=0.02)  # fmt: skip
FAST_PPO = PPOConfig(n_steps=64, batch_size=128, n_epochs=8, lr=3e-3, hidden=(32, 32), num_envs=4,
                     normalize_reward=False, normalize_obs=False, log_std_init=-0.5)  # fmt: skip


def _action_error(run_dir) -> float:
    policy = load_inference_policy(run_dir)
    obs = torch.as_tensor(np.random.default_rng(1).uniform(-0.8, 0.8, (256, 2)), dtype=torch.float32)
    return float((policy(obs) - obs).abs().mean())


@pytest.mark.slow  # a real learning run each
@pytest.mark.parametrize(
    ("algo", "algo_config", "steps"),
    [
        ("td3", FAST_TD3, 1000),
        ("ddpg", ddpg(FAST_TD3), 1000),
        ("ppo", FAST_PPO, 4096),
        ("ppo", dataclasses.replace(FAST_PPO, distribution="beta"), 4096),
    ],
    ids=["td3", "ddpg", "ppo-gaussian", "ppo-beta"],
)
def test_learns_identity(tmp_path, algo, algo_config, steps):
    cfg = TrainConfig(env=ENV_ID, algo=algo, steps=steps, vec="sync", num_envs=algo_config.__dict__.get("num_envs", 1),
                      checkpoint_every=10**9, tensorboard=False, progress=False, algo_config=algo_config)  # fmt: skip
    summary = train(cfg, tmp_path / "run")
    err = _action_error(tmp_path / "run")
    assert err < 0.12, f"{algo} mean |a - target| = {err:.3f} after {steps} steps"
    if algo != "ppo":  # PPO's training returns include its (still wide) sampling noise
        assert summary["return_mean"] > -0.1
