"""CAPS: smoothness terms of the PPO loss (Mysore et al. 2021, "Regularizing Action Policies for Smooth Control
with Reinforcement Learning", arXiv:2012.06644), a ``policies.ppo.ExtraLoss``.

A reward on the commanded torque cannot see what makes it chatter: a policy with a high gain from noisy sensors to
its action passes the noise on. CAPS regularizes the policy itself, on the rollout's observations:

* **temporal**: ``‖μ(s_t) − μ(s_{t+1})‖²``, the policy's mean action should change little between consecutive
  observations of one env;
* **spatial**: ``‖μ(s) − μ(s + ε)‖²`` with ``ε ~ N(0, σ²)`` in normalized observation units: similar
  observations, similar actions (a bound on the policy's gain from sensor noise).

μ is the actor's mean before any action filter, so the terms smooth what the filter receives. The temporal pair of
a rollout's last step is the step itself (no term), and a pair that straddles an episode reset pairs the final
observation with the next episode's first one, about one pair in an episode's length; CAPS tolerates both.
The spatial noise is drawn from the PPO agent's generator (checkpointed: resume stays exact).

:class:`BoundTerm` is rl_games' bounds loss: ``Σ max(|μ| − 1, 0)²`` keeps the mean inside the action clip. Beyond
the clip every sample of a mean is the same command, so no reward term can pull the mean back; a mean far past it
stays at the torque limit however the reward charges that.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from policies.normalizer import ObsNormalizer


class SmoothnessTerm:
    """The CAPS term: ``temporal · ‖μ(s_t) − μ(s_{t+1})‖² + spatial · ‖μ(s) − μ(s + ε)‖²`` (batch means)."""

    name = "loss/smooth"
    coef = 1.0  # the two weights are inside the term

    def __init__(self, normalizer: ObsNormalizer, temporal: float, spatial: float, sigma: float, n_steps: int,
                 num_envs: int, obs_dim: int) -> None:  # fmt: skip
        self.normalizer, self.temporal, self.spatial, self.sigma = normalizer, temporal, spatial, sigma
        self.labels = torch.zeros(n_steps, num_envs, obs_dim)  # the next step's normalized observation
        self._np_labels = self.labels.numpy()  # the same memory
        self.gen: torch.Generator | None = None  # the PPO agent's generator (policies.agent.make_agent sets it)

    def record(self, t: int, obs: np.ndarray) -> None:
        x = self.normalizer(obs)
        self._np_labels[t] = x  # until step t + 1 arrives: no temporal pair
        if t > 0:
            self._np_labels[t - 1] = x

    def loss(self, actor: nn.Module, obs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        mean = actor.net(obs)  # type: ignore[operator]
        total = torch.zeros(())
        if self.temporal > 0:
            total = total + self.temporal * ((mean - actor.net(labels)) ** 2).sum(-1).mean()  # type: ignore[operator]
        if self.spatial > 0:
            noise = torch.randn(obs.shape, generator=self.gen) * self.sigma
            total = total + self.spatial * ((mean - actor.net(obs + noise)) ** 2).sum(-1).mean()  # type: ignore[operator]
        return total


class BoundTerm:
    """The bounds loss ``Σ max(|μ(s)| − 1, 0)²`` on the actor's mean (batch mean), with weight ``coef``."""

    name = "loss/bound"

    def __init__(self, coef: float, n_steps: int, num_envs: int) -> None:
        self.coef = coef
        self.labels = torch.zeros(n_steps, num_envs, 0)  # needs no label

    def record(self, t: int, obs: np.ndarray) -> None:
        pass

    def loss(self, actor: nn.Module, obs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        mean = actor.net(obs)  # type: ignore[operator]
        return (torch.relu(mean.abs() - 1.0) ** 2).sum(-1).mean()
