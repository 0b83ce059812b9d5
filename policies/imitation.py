"""Learning from a scripted expert, for tasks PPO does not discover alone (the knob: a re-grasping gait).

Two pieces, both used by :class:`policies.ppo.PPOAgent` when its config names an expert:

* a **DAgger warm start** (Ross et al. 2011): the expert drives first, then the learner drives while the expert
  labels every visited observation; the actor's mean is refit (MSE) on everything collected so far. The learner
  visits its own mistakes and learns how the expert recovers from them, which plain behaviour cloning does not.
* a **behaviour-cloning term** in the PPO loss afterwards (DAPG, Rajeswaran et al. 2018): PPO fine-tunes on the
  env reward under domain randomization while the term keeps the policy near the expert's actions on the states
  PPO visits. Without it, PPO fine-tuning of the DAgger policy *lowered* the knob's success rate from 93–98 % to
  66–70 % in 400k steps while the return rose (BENCHMARKS.md, "Learning").

The expert is any function of one raw observation → normalized action in [-1, 1]; it lives with the env
(``sim.get_expert``), so this module, like the rest of ``policies/``, only sees numbers.

``actor_ignores`` (observation indices the actor must not use) is implemented as zero first-layer weight columns
held at zero by zeroing their gradients: the exported graph needs nothing new. The knob learner must ignore its
previous action: with it, it copied its own last action and stalled ("copycat", 0–5 % success vs 83–95 %).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from policies.normalizer import ObsNormalizer
from sim.errors import UserError

Expert = Callable[[np.ndarray], np.ndarray]  # one raw observation → normalized action in [-1, 1]


def bc_loss(mean: torch.Tensor, expert_action: torch.Tensor) -> torch.Tensor:
    """Behaviour-cloning loss: mean squared error of the policy's (pre-clamp) mean to the expert's action."""
    return ((mean - expert_action) ** 2).mean()


def expert_actions(expert: Expert, obs: np.ndarray) -> np.ndarray:
    """The expert's actions for a batch of raw observations ``(N, obs_dim)`` → ``(N, act_dim)`` float32."""
    return np.stack([np.asarray(expert(o), dtype=np.float32) for o in obs])


def obs_indices(fields: Sequence[int | str], obs_names: Sequence[str] | None, obs_dim: int) -> tuple[int, ...]:
    """The observation indices of ``fields``: names of the env's observation fields (``ObsField.name`` of its
    robot spec, e.g. ``prev_action_finger0_base``), or integer indices (configs written before names: they load
    as they were). A UserError names an unknown field or an index out of range."""
    out = []
    for f in fields:
        if isinstance(f, str) and not f.lstrip("-").isdigit():
            if obs_names is None:
                raise UserError(f"actor_ignores names a field '{f}', but this env has no named observation layout; "
                                "give indices")  # fmt: skip
            if f not in obs_names:
                raise UserError(f"actor_ignores: no observation field '{f}'; fields: {', '.join(obs_names)}")
            out.append(list(obs_names).index(f))
        else:
            i = int(f)
            if not 0 <= i < obs_dim:
                raise UserError(f"actor_ignores index {i} is not an observation index in [0, {obs_dim})")
            out.append(i)
    return tuple(out)


def first_linear(net: nn.Module) -> nn.Linear:
    """The input layer of an MLP actor (where ignored inputs get their zero weights)."""
    for m in net.modules():
        if isinstance(m, nn.Linear):
            return m
    raise ValueError("the actor has no nn.Linear layer")


def ignore_inputs_(layer: nn.Linear, idx: torch.Tensor) -> None:
    """Zero the weight columns of the inputs ``idx`` (and their gradients, when present): those inputs then have
    no effect on the output, and an optimizer that sees zero gradients leaves the columns at zero (Adam: zero
    moments, zero step)."""
    if len(idx) == 0:
        return
    with torch.no_grad():
        layer.weight.index_fill_(1, idx, 0.0)
        if layer.weight.grad is not None:
            layer.weight.grad.index_fill_(1, idx, 0.0)


class DAggerData:
    """The aggregate dataset of DAgger: raw observations and the expert's actions, and the refit on it."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, params: Sequence[nn.Parameter], lr: float) -> None:
        self.obs = torch.zeros(capacity, obs_dim)
        self.act = torch.zeros(capacity, act_dim)
        self.size = 0
        self.opt = torch.optim.Adam(params, lr=lr)

    def add(self, obs: np.ndarray, actions: np.ndarray) -> None:
        """Append a batch of (raw observation, expert action) rows; rows beyond the capacity are dropped."""
        n = max(0, min(len(obs), len(self.obs) - self.size))
        self.obs[self.size : self.size + n] = torch.as_tensor(np.asarray(obs[:n], dtype=np.float32))
        self.act[self.size : self.size + n] = torch.as_tensor(actions[:n])
        self.size += n

    def fit(
        self,
        mean_net: nn.Module,
        normalizer: ObsNormalizer,
        epochs: int,
        batch_size: int,
        gen: torch.Generator,
        ignore: torch.Tensor,
    ) -> float:
        """``epochs`` passes of minibatch MSE regression of ``mean_net`` on the whole dataset, the observations
        normalized by the normalizer's *current* statistics. Returns the mean loss of the last pass."""
        x = torch.as_tensor(normalizer(self.obs[: self.size].numpy()))
        y = self.act[: self.size]
        layer = first_linear(mean_net)
        total, count = 0.0, 0
        for _ in range(epochs):
            perm = torch.randperm(self.size, generator=gen)
            total, count = 0.0, 0
            for start in range(0, self.size, batch_size):
                idx = perm[start : start + batch_size]
                loss = bc_loss(mean_net(x[idx]), y[idx])
                self.opt.zero_grad(set_to_none=False)
                loss.backward()
                ignore_inputs_(layer, ignore)
                self.opt.step()
                total, count = total + loss.item(), count + 1
        return total / max(1, count)

    def state_dict(self) -> dict:
        return {"obs": self.obs[: self.size].clone(), "act": self.act[: self.size].clone(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        n = len(state["obs"])
        if n > len(self.obs):
            raise UserError(f"checkpoint holds {n} DAgger rows, more than this config's capacity {len(self.obs)}")
        self.obs[:n], self.act[:n], self.size = state["obs"], state["act"], n
        self.opt.load_state_dict(state["opt"])
