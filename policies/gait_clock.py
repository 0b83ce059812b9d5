"""The policy's gait clock: a phase the policy carries as state and sees, so that a periodic gait has a beat.

    φ_0 = 0,   φ_{t+1} = frac(φ_t + f_clock / f_control),   clock features c_t = (sin 2πφ_t, cos 2πφ_t)

The actor reads ``(observation_t, c_t)``; the robot's sensors do not provide ``c_t``, the policy does (Siekmann et
al. 2021, "Sim-to-Real Learning of All Common Bipedal Gaits via Periodic Reward Composition": a clock input and a
reward that asks each foot to be on the ground in its stance phase and in the air in its swing phase). The clock
is part of the policy everywhere, like the action filter (policies/action_filter.py), in float32:

* training: :class:`GaitClock` wraps each training env (``s2r train --gait-clock-hz F``): it appends ``c_t`` to
  the observation and adds the robot's periodic contact term (``sim.biped.BipedReward.clock_term``, weight
  ``gait_clock``) to the reward;
* evaluation: :func:`policies.checkpoint.inference_policy_from_checkpoint` wraps the policy of a run trained with
  a clock in :class:`ClockedPolicy`, a policy with state (the phase φ);
* the robot: the exporter writes ``gait_clock`` → ``gait_clock_next`` state tensors into the ONNX graph; the
  controller carries the phase step to step and resets it to 0 at every start (ENABLE), as any policy state.

``tests/policies/test_gait_clock.py`` checks the wrapper, the torch policy and the exported graph agree.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from policies.action_filter import control_rate_hz
from sim.errors import UserError

CLOCK_FIELDS = ("gait_clock_sin", "gait_clock_cos")  # (sin 2πφ, cos 2πφ), appended to the observation
N_FEATURES = len(CLOCK_FIELDS)
CLOCK_RESOLUTION = 1e-3  # the normalizer's std floor for the clock features (1: their full scale)


def clock_increment(clock_hz: float, rate_hz: float) -> float:
    """Phase advance per control step (cycles), rounded to float32 as all three implementations use it."""
    if not (np.isfinite(clock_hz) and 0 < clock_hz < rate_hz / 2):
        raise UserError(f"--gait-clock-hz must be > 0 and below half the control rate ({rate_hz / 2:g} Hz), "
                        f"got {clock_hz:g}")  # fmt: skip
    return float(np.float32(clock_hz / rate_hz))


def advance(phase: float, increment: float) -> np.float32:
    """φ → frac(φ + increment), float32 (numpy half; :meth:`ClockedPolicy.forward` is the torch half)."""
    p = np.float32(phase) + np.float32(increment)
    return np.float32(p - np.floor(p))


def features(phase: float) -> np.ndarray:
    """The clock features (sin 2πφ, cos 2πφ), float32."""
    angle = np.float32(2.0 * np.pi) * np.float32(phase)
    return np.array([np.sin(angle), np.cos(angle)], dtype=np.float32)


class GaitClock(gym.Wrapper):
    """Training half of the gait clock: observation ``(obs, c_t)``, reward plus the robot's periodic contact term.

    The env must be an s2r robot env whose reward weights have a ``clock_term(phase, contacts)`` and which reports
    ``foot_contacts()`` (the biped)."""

    def __init__(self, env: gym.Env, clock_hz: float) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not (
            hasattr(base, "foot_contacts") and hasattr(getattr(base, "reward_weights", None), "clock_term")
        ):
            raise UserError(
                "--gait-clock-hz needs a legged s2r robot env (the biped): its reward has the clock term"
            )
        self.clock_hz = float(clock_hz)
        self.increment = clock_increment(clock_hz, control_rate_hz(env))
        space = env.observation_space
        assert isinstance(space, gym.spaces.Box)
        ones = np.ones(N_FEATURES, dtype=np.float32)
        self.observation_space = gym.spaces.Box(np.concatenate([space.low, -ones]).astype(np.float32),
                                                np.concatenate([space.high, ones]).astype(np.float32))  # fmt: skip
        self._phase = np.float32(0.0)

    def _obs(self, obs: Any) -> np.ndarray:
        return np.concatenate([np.asarray(obs, dtype=np.float32), features(self._phase)])

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self._phase = np.float32(0.0)
        obs, info = self.env.reset(**kwargs)
        return self._obs(obs), info

    def step(self, action: Any) -> tuple:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._phase = advance(self._phase, self.increment)
        base = self.env.unwrapped
        term = base.reward_weights.clock_term(float(self._phase), base.foot_contacts())  # type: ignore[attr-defined]
        if "reward_terms" in info:
            info["reward_terms"] = {**info["reward_terms"], "gait_clock": term}
        return self._obs(obs), float(reward) + term, terminated, truncated, info


class ClockedPolicy(nn.Module):
    """A feed-forward inference policy fed ``(obs, c_t)``: ``(obs, φ) → (action, φ_next)``, a policy with state.

    It has the interface of a recurrent policy (``initial_state``, ``state_shapes``, ``STATE_NAMES``), so
    evaluation and export carry its phase; :class:`policies.action_filter.FilteredPolicy` may wrap it."""

    STATE_NAMES = ("gait_clock",)

    def __init__(self, policy: nn.Module, clock_hz: float, rate_hz: float) -> None:
        super().__init__()
        self.policy = policy
        self.clock_hz = float(clock_hz)
        self.increment = clock_increment(clock_hz, rate_hz)
        for name in ("env_id", "robot_id", "config", "git_commit", "param_source"):
            setattr(self, name, getattr(policy, name, None))
        self.obs_dim: int = int(getattr(policy, "obs_dim")) - N_FEATURES  # noqa: B009  (the sensors' observation)
        self.act_dim: int = int(getattr(policy, "act_dim"))  # noqa: B009
        self.eval()

    @property
    def obs_std(self) -> torch.Tensor:
        """The normalizer's std over the sensors' observation (export checks its input gain)."""
        return self.policy.obs_std[: self.obs_dim]  # type: ignore[index]

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        return (torch.zeros(batch, 1),)

    def state_shapes(self) -> dict[str, list[int]]:
        return {"gait_clock": [1]}

    def forward(self, obs: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(state) != 1:
            raise TypeError("a clocked policy takes (obs, gait_clock); see initial_state()")
        (phase,) = state
        angle = phase * float(np.float32(2.0 * np.pi))
        action = self.policy(torch.cat([obs, torch.sin(angle), torch.cos(angle)], dim=-1))
        nxt = phase + self.increment
        return action, nxt - torch.floor(nxt)
