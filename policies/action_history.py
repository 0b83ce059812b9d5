"""The policy's action history: its own last K actions, part of its observation and carried by the policy as state.

    h_t = (clip(a_{t−1}), …, clip(a_{t−K})),   a_{<0} = 0,   the actor reads (observation_t, h_t)

The robot's sensors report what the joints did, not what the motors were last told; with actuation latency the
commands in flight are invisible to a policy that sees only the sensors, and an action-rate cost charges a change
the policy cannot see. Feeding the last actions back is the usual answer (legged_gym's observation ends with the
last action). The history is part of the policy everywhere, like the action filter (policies/action_filter.py) and
the gait clock (policies/gait_clock.py), in float32:

* training: :class:`ActionHistory` wraps each training env (``s2r train --action-history K``), outermost, so it
  records the learner's action as the policy emitted it (clipped to [−1, 1], before any action filter);
* evaluation: :func:`policies.checkpoint.inference_policy_from_checkpoint` wraps the policy of a run trained with
  a history in :class:`HistoryPolicy`, a policy with state (the history);
* the robot: the exporter writes ``action_history`` → ``action_history_next`` state tensors into the ONNX graph;
  the controller carries them step to step and resets them to 0 at every start (ENABLE), as any policy state.

``tests/policies/test_action_history.py`` checks the wrapper, the torch policy and the exported graph agree.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from sim.errors import UserError

MAX_HISTORY = 8  # control steps; more is memory, for which the recurrent policies exist
HISTORY_RESOLUTION = 1e-3  # the normalizer's std floor for the history's entries (1: their full scale)


def check_history(k: int) -> int:
    """``k`` as a history length; UserError unless 1 ≤ k ≤ MAX_HISTORY."""
    if not 1 <= int(k) <= MAX_HISTORY:
        raise UserError(f"--action-history must be 1 to {MAX_HISTORY} control steps (0 turns it off), got {k}")
    return int(k)


def history_fields(k: int, act_dim: int) -> list[str]:
    """Names of the history's observation entries, most recent action first."""
    return [f"last_action_{lag}_{i}" for lag in range(1, k + 1) for i in range(act_dim)]


def push(history: np.ndarray, action: np.ndarray) -> np.ndarray:
    """The history one step on: ``clip(action)`` in front, the oldest action dropped (numpy half; float32)."""
    a = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
    return np.concatenate([a, history[: history.size - a.size]]).astype(np.float32)


class ActionHistory(gym.Wrapper):
    """Training half of the action history: observation ``(obs, h_t)``."""

    def __init__(self, env: gym.Env, k: int) -> None:
        super().__init__(env)
        self.k = check_history(k)
        obs_space, act_space = env.observation_space, env.action_space
        assert isinstance(obs_space, gym.spaces.Box) and isinstance(act_space, gym.spaces.Box)
        self.act_dim = int(np.prod(act_space.shape or ()))
        ones = np.ones(self.k * self.act_dim, dtype=np.float32)
        self.observation_space = gym.spaces.Box(np.concatenate([obs_space.low, -ones]).astype(np.float32),
                                                np.concatenate([obs_space.high, ones]).astype(np.float32))  # fmt: skip
        self._h = np.zeros(self.k * self.act_dim, dtype=np.float32)

    def _obs(self, obs: Any) -> np.ndarray:
        return np.concatenate([np.asarray(obs, dtype=np.float32), self._h])

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self._h = np.zeros_like(self._h)
        obs, info = self.env.reset(**kwargs)
        return self._obs(obs), info

    def step(self, action: Any) -> tuple:
        obs, reward, terminated, truncated, info = self.env.step(action)  # a bad action: the env's own error
        self._h = push(self._h, np.nan_to_num(np.asarray(action, dtype=np.float32).reshape(self.act_dim)))
        return self._obs(obs), reward, terminated, truncated, info


class HistoryPolicy(nn.Module):
    """A feed-forward inference policy fed ``(obs, h_t)``: ``(obs, h) → (action, h_next)``, a policy with state.

    It has the interface of a recurrent policy (``initial_state``, ``state_shapes``, ``STATE_NAMES``), so
    evaluation and export carry its history; :class:`policies.action_filter.FilteredPolicy` may wrap it."""

    STATE_NAMES = ("action_history",)

    def __init__(self, policy: nn.Module, k: int) -> None:
        super().__init__()
        self.policy = policy
        self.k = check_history(k)
        for name in ("env_id", "robot_id", "config", "git_commit", "param_source"):
            setattr(self, name, getattr(policy, name, None))
        self.act_dim: int = int(getattr(policy, "act_dim"))  # noqa: B009  (nn.Module attribute, typed here)
        self.obs_dim: int = int(getattr(policy, "obs_dim")) - self.k * self.act_dim  # noqa: B009  (the sensors')
        self.eval()

    @property
    def obs_std(self) -> torch.Tensor:
        """The normalizer's std over the sensors' observation (export checks its input gain)."""
        return self.policy.obs_std[: self.obs_dim]  # type: ignore[index]

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        return (torch.zeros(batch, self.k * self.act_dim),)

    def state_shapes(self) -> dict[str, list[int]]:
        return {"action_history": [self.k * self.act_dim]}

    def forward(self, obs: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(state) != 1:
            raise TypeError("a policy with an action history takes (obs, action_history); see initial_state()")
        (h,) = state
        action = self.policy(torch.cat([obs, h], dim=-1))
        return action, torch.cat([action.clamp(-1.0, 1.0), h[:, : h.shape[1] - self.act_dim]], dim=-1)
