"""The policy's action filter: a first-order low-pass on the normalized action, part of the policy everywhere.

    y_t = y_{t−1} + α · (clip(a_t, −1, 1) − y_{t−1}),   α = 1 − exp(−2π · f_c / f_control),   y_{−1} = 0

``a_t`` is the network's action, ``y_t`` what the motors are commanded (× the torque limits). A filter bolted on
at deploy time only does not work (docs/pretrained.md: a 5 Hz low-pass added after training kept the nominal
walk and lost it at 4 ms of latency), so the same filter runs in all three places, in float32:

* training: :class:`LowPassAction` wraps each training env (``s2r train --action-filter-hz F``): the learner's
  action goes through the filter before the env, so the policy learns with the filter's lag;
* evaluation: :func:`policies.checkpoint.inference_policy_from_checkpoint` wraps the policy of a run trained with
  a filter in :class:`FilteredPolicy`, a policy with state (the filter's output ``y``), like a recurrent one;
* the robot: the exporter sees a policy with state and writes ``action_filter`` → ``action_filter_next`` state
  tensors into the ONNX graph (``deploy/export_recurrent.py``); the controller carries it step to step and resets
  it to 0 at every start, as it does for a recurrent bundle.

``tests/policies/test_action_filter.py`` checks the wrapper and the exported graph give the same commands over a
seeded episode.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from sim.errors import UserError


def lowpass_alpha(cutoff_hz: float, rate_hz: float) -> float:
    """The filter's gain α for a cutoff ``cutoff_hz`` at a control rate ``rate_hz``, rounded to float32 (the
    precision all three implementations use)."""
    if not (math.isfinite(cutoff_hz) and cutoff_hz > 0):
        raise UserError(f"--action-filter-hz must be > 0 (0 turns the filter off), got {cutoff_hz:g}")
    return float(np.float32(1.0 - math.exp(-2.0 * math.pi * cutoff_hz / rate_hz)))


def control_rate_hz(env: gym.Env) -> float:
    """The control rate of an s2r robot env (its robot spec); UserError for envs without one."""
    spec = getattr(env.unwrapped, "robot_spec", None)
    if spec is None:
        raise UserError(
            "--action-filter-hz needs an s2r robot env (biped, knob): it needs the robot's control rate"
        )
    return float(spec.control_hz)


class LowPassAction(gym.Wrapper):
    """Training half of the action filter: the env receives ``y_t`` (module docstring) instead of the action."""

    def __init__(self, env: gym.Env, cutoff_hz: float) -> None:
        super().__init__(env)
        self.cutoff_hz = float(cutoff_hz)
        self.alpha = np.float32(lowpass_alpha(cutoff_hz, control_rate_hz(env)))
        self._y = np.zeros(tuple(env.action_space.shape or ()), dtype=np.float32)

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self._y = np.zeros_like(self._y)
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple:
        a = np.asarray(action, dtype=np.float32)
        if a.shape != self._y.shape or not np.isfinite(a).all():
            return self.env.step(action)  # the env raises its own one-line error
        self._y = self._y + self.alpha * (np.clip(a, -1.0, 1.0) - self._y)
        return self.env.step(self._y.copy())


class FilteredPolicy(nn.Module):
    """An inference policy followed by the action filter: ``(obs, y) → (y_next, y_next)``, a policy with state.

    It has the interface of :class:`policies.lstm_td3.RecurrentInferencePolicy` (``initial_state``,
    ``state_shapes``, ``STATE_NAMES``), so evaluation and export treat it as a policy with memory."""

    STATE_NAMES: tuple[str, ...] = ("action_filter",)

    def __init__(self, policy: nn.Module, cutoff_hz: float, rate_hz: float) -> None:
        super().__init__()
        self.policy = policy
        self.cutoff_hz = float(cutoff_hz)
        self.alpha = lowpass_alpha(cutoff_hz, rate_hz)
        for name in ("env_id", "robot_id", "obs_dim", "config", "git_commit", "param_source"):
            setattr(self, name, getattr(policy, name, None))
        self.act_dim: int = int(getattr(policy, "act_dim"))  # noqa: B009  (nn.Module attribute, typed here)
        # a policy with its own state inside (the gait clock, policies.gait_clock): its state comes first
        self.inner_states: tuple[str, ...] = tuple(getattr(policy, "STATE_NAMES", ()))
        self.STATE_NAMES = (*self.inner_states, "action_filter")
        self.eval()

    @property
    def obs_std(self) -> torch.Tensor:
        """The normalizer's std (export checks its input gain)."""
        return self.policy.obs_std  # type: ignore[return-value]

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        inner = tuple(self.policy.initial_state(batch)) if self.inner_states else ()  # type: ignore[operator]
        return (*inner, torch.zeros(batch, self.act_dim))

    def state_shapes(self) -> dict[str, list[int]]:
        inner = self.policy.state_shapes() if self.inner_states else {}  # type: ignore[operator]
        return {**inner, "action_filter": [self.act_dim]}

    def forward(self, obs: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if len(state) != len(self.STATE_NAMES):
            raise TypeError(f"a filtered policy takes (obs, {', '.join(self.STATE_NAMES)}); see initial_state()")
        *inner, y = state
        if self.inner_states:
            action, *inner_next = self.policy(obs, *inner)
        else:
            action, inner_next = self.policy(obs), []
        y_next = y + self.alpha * (action.clamp(-1.0, 1.0) - y)
        return (y_next, *inner_next, y_next)
