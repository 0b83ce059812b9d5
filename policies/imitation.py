"""Learning from a scripted expert, for tasks PPO does not discover alone (the knob: a re-grasping gait).

Two plug-ins, composed with :class:`policies.ppo.PPOAgent` by :func:`policies.agent.make_agent` when the PPO
config names an expert:

* :class:`DAggerWarmStart`, a **DAgger warm start** (Ross et al. 2011): the expert drives first, then the learner drives while the expert
  labels every visited observation; the actor's mean is refit (MSE) on everything collected so far. The learner
  visits its own mistakes and learns how the expert recovers from them, which plain behaviour cloning does not.
* :class:`BCTerm`, a **behaviour-cloning term** in the PPO loss afterwards (DAPG, Rajeswaran et al. 2018): PPO fine-tunes on the
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
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from policies.normalizer import ObsNormalizer
from sim.errors import UserError

if TYPE_CHECKING:
    from policies.ppo import PPOAgent, PPOConfig

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


def ignore_inputs_(layer: nn.Module, idx: torch.Tensor, weight: str = "weight") -> None:
    """Zero the columns of the inputs ``idx`` in the input weight ``weight`` of ``layer`` (an ``nn.Linear``'s
    ``weight``, an ``nn.LSTM``'s ``weight_ih_l0``) and in its gradient, when present: those inputs then have no
    effect on the output, and an optimizer that sees zero gradients leaves the columns at zero (Adam: zero
    moments, zero step)."""
    if len(idx) == 0:
        return
    w = getattr(layer, weight)
    with torch.no_grad():
        w.index_fill_(1, idx, 0.0)
        if w.grad is not None:
            w.grad.index_fill_(1, idx, 0.0)


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


class BCTerm:
    """The behaviour-cloning term of the PPO loss (a ``policies.ppo.ExtraLoss``): each rollout observation is
    labelled with the expert's action, and the term is the MSE of the policy's mean to it, weighted ``coef``."""

    name = "loss/bc"

    def __init__(self, expert: Expert, coef: float, n_steps: int, num_envs: int, act_dim: int) -> None:
        self.expert, self.coef = expert, coef
        self.labels = torch.zeros(n_steps, num_envs, act_dim)
        self._np_labels = self.labels.numpy()  # the same memory

    def record(self, t: int, obs: np.ndarray) -> None:
        self._np_labels[t] = expert_actions(self.expert, obs)

    def loss(self, actor: nn.Module, obs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return bc_loss(actor.net(obs), labels)  # type: ignore[operator]


class DAggerWarmStart:
    """A PPO agent behind a DAgger warm start (an :class:`policies.agent.Agent` itself).

    For the first ``imitation_steps`` env steps (part of ``--steps``) the expert drives, then, after
    ``imitation_expert_steps``, the learner (its deterministic action); the expert labels every observation and
    the actor's mean is refit every ``imitation_iter_steps`` on all the data so far, and once more, twice as
    long, at the end. From then on the wrapped agent acts and learns alone, with the observation normalizer
    frozen at the statistics its policy was fitted to."""

    def __init__(self, agent: PPOAgent, expert: Expert, cfg: PPOConfig, num_envs: int) -> None:
        self.agent, self.expert, self.cfg = agent, expert, cfg
        self.dagger: DAggerData | None = DAggerData(cfg.imitation_steps + num_envs, agent.obs_dim, agent.act_dim,
                                                    list(agent.actor.net.parameters()), cfg.imitation_lr)  # fmt: skip
        self.next_fit = cfg.imitation_iter_steps  # steps_seen at the next refit
        self.replay = agent.replay
        self.log_every = agent.log_every

    @property
    def actor(self) -> nn.Module:
        return self.agent.actor

    @property
    def actor_arch(self) -> dict:
        return self.agent.actor_arch

    @property
    def imitating(self) -> bool:
        """True during the warm start (the wrapped agent collects nothing then)."""
        return self.agent.steps_seen < self.cfg.imitation_steps

    @property
    def phase(self) -> str:
        """``expert`` (the expert acts), ``dagger`` (the learner acts), ``dagger-fit`` (the longer final refit
        is due), then the wrapped agent's."""
        if self.imitating:
            return "expert" if self.agent.steps_seen < self.cfg.imitation_expert_steps else "dagger"
        return "dagger-fit" if self.dagger is not None else self.agent.phase

    @property
    def at_boundary(self) -> bool:
        return self.agent.at_boundary

    @property
    def _refit_due(self) -> bool:
        return self.dagger is not None and (self.agent.steps_seen >= self.next_fit or not self.imitating)

    @property
    def update_due(self) -> bool:
        return self._refit_due or (not self.imitating and self.agent.update_due)

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        if not self.imitating or deterministic:
            return self.agent.act(obs, deterministic)
        assert self.dagger is not None
        labels = expert_actions(self.expert, obs)
        self.dagger.add(obs, labels)
        if self.agent.steps_seen < self.cfg.imitation_expert_steps:
            return labels
        return self.agent.act(obs, deterministic=True)  # DAgger: the learner drives

    def observe(self, obs, action, reward, next_obs, terminated, truncated, **privileged) -> None:
        if self.imitating:  # the warm start's steps count toward the learner's (its LR schedule spans --steps)
            self.agent.steps_seen += len(reward)
            return
        self.agent.observe(obs, action, reward, next_obs, terminated, truncated, **privileged)

    def update(self) -> dict[str, float] | None:
        if self._refit_due:
            return self._refit()
        return None if self.imitating else self.agent.update()

    def _refit(self) -> dict[str, float]:
        assert self.dagger is not None
        last = not self.imitating
        epochs = self.cfg.imitation_epochs * (2 if last else 1)
        loss = self.dagger.fit(self.agent.actor.net, self.agent.normalizer, epochs, 256, self.agent.gen,
                               self.agent.ignore)  # fmt: skip
        self.next_fit += self.cfg.imitation_iter_steps
        if last:
            self.dagger = None  # PPO from here on: the data is not needed again
            # PPO fine-tunes a policy fitted to these input statistics: a normalizer still drifting with the
            # states that PPO and ADR's widening ranges visit would shift every input under it (the knob lost
            # up to half its success that way, with a learning rate too small to follow)
            self.agent.normalizer.frozen = True
        return {"loss/imitation": loss}

    def forget_replay(self) -> None:
        self.agent.forget_replay()

    def state_dict(self) -> dict[str, Any]:
        """The wrapped agent's, with the refit schedule in its counters and the DAgger data (None once over)."""
        state = self.agent.state_dict()
        state["counters"]["next_fit"] = self.next_fit
        state["dagger"] = self.dagger.state_dict() if self.dagger is not None else None
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state)
        self.next_fit = int(state["counters"].get("next_fit", self.cfg.imitation_iter_steps))
        if state.get("dagger") is None:
            self.dagger = None  # the warm start is over
            self.agent.normalizer.frozen = True
        elif self.dagger is not None:
            self.dagger.load_state_dict(state["dagger"])
