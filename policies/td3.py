"""TD3 (Fujimoto et al. 2018) and DDPG (Lillicrap et al. 2016) as one learner with two configs.

TD3 = twin critics with a min target, target policy smoothing (clipped noise), delayed actor/target updates,
Gaussian exploration. DDPG = ``TD3Config(n_critics=1, target_noise=0, policy_delay=1)``, optionally with
Ornstein–Uhlenbeck exploration. The replay buffer stores raw observations; they are normalized when sampled so
the normalizer can keep moving without stale entries.

With ``privileged_critic`` (asymmetric actor-critic) the critics read the observation joined with the env's
privileged state (``info["privileged"]``, stored raw in the replay buffer beside the observations, normalized
by its own running normalizer when sampled); the actor, the only network checkpointed as the policy and
exported, sees the observation alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from policies.hparams import build, preset_values
from policies.networks import ACTIVATIONS, DeterministicActor, mlp, polyak_update
from policies.normalizer import ObsNormalizer, privileged_normalizer
from sim.config import option, validate
from sim.errors import UserError


@dataclass(frozen=True)
class TD3Config:
    """TD3 / DDPG hyper-parameters: the --td3-* flags of ``s2r train`` (LSTM-TD3's too)."""

    gamma: float = option(0.99, "discount per control step", low=0, high=1, flag="--td3-gamma")
    tau: float = option(0.005, "polyak factor of the target nets", low=0, high=1, flag="--td3-tau")
    lr_actor: float = option(1e-3, "actor learning rate (Adam)", above=0, flag="--td3-lr-actor")
    lr_critic: float = option(1e-3, "critic learning rate (Adam)", above=0, flag="--td3-lr-critic")
    batch_size: int = option(256, "minibatch size, transitions", above=0, flag="--td3-batch-size")
    buffer_size: int = option(300_000, "replay buffer size, transitions (preallocated float32)", above=0,
                              flag="--td3-buffer-size")
    learning_starts: int = option(10_000, "env steps of uniform-random actions before learning", low=0,
                                  flag="--td3-learning-starts")
    updates_per_step: float = option(1.0, "gradient updates per env step (summed over sub-envs)", above=0,
                                     flag="--td3-updates-per-step")
    policy_delay: int = option(2, "critic updates per actor/target update", above=0, flag="--td3-policy-delay")
    target_noise: float = option(0.2, "std of the target policy smoothing, normalized action units", low=0,
                                 flag="--td3-target-noise")
    noise_clip: float = option(0.5, "clip of the smoothing noise, normalized action units", low=0,
                               flag="--td3-noise-clip")
    n_critics: int = option(2, "2: TD3's clipped double Q; 1: DDPG", low=1, high=2, flag="--td3-n-critics")
    expl_noise: float = option(0.1, "std of the exploration noise, normalized action units", low=0,
                               flag="--td3-expl-noise")
    noise_type: str = option("gaussian", "exploration noise: gaussian or ou (Ornstein-Uhlenbeck, the DDPG paper)",
                             choices=("gaussian", "ou"), flag="--td3-noise-type")
    ou_theta: float = option(0.15, "mean reversion of the OU noise, per control step", low=0, flag="--td3-ou-theta")
    hidden: tuple[int, ...] = option((400, 300), "hidden layer widths of actor and critics", flag="--td3-hidden")
    activation: str = option("relu", "hidden-layer activation", choices=tuple(ACTIVATIONS), flag="--td3-activation")
    # rl-zoo's TD3 presets do not normalize; the biped/knob presets do
    normalize_obs: bool = option(False, "running mean/std observation normalizer (folded into the export)",
                                 flag="--td3-normalize-obs")
    privileged_critic: bool = option(False, "asymmetric actor-critic: the critics also read info[\"privileged\"]",
                                     flag="--td3-privileged-critic")

    def __post_init__(self) -> None:
        validate(self)
        if self.batch_size > self.buffer_size:
            raise UserError(f"batch_size {self.batch_size} exceeds buffer_size {self.buffer_size}")


def ddpg(cfg: TD3Config) -> TD3Config:
    """The DDPG variant of a TD3 config: one critic, no target smoothing, no delay."""
    return replace(cfg, n_critics=1, target_noise=0.0, policy_delay=1)


def td3_preset(env_id: str, algo: str = "td3") -> TD3Config:
    """The env's preset (``policies/presets/*_td3.yaml``; sane defaults for any other continuous env);
    ``algo='ddpg'`` applies :func:`ddpg`."""
    values = preset_values("td3").get(env_id)
    cfg = TD3Config() if values is None else build(TD3Config, values, f"TD3 preset for {env_id}")
    return ddpg(cfg) if algo == "ddpg" else cfg


def td3_target(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    next_q1: torch.Tensor,
    next_q2: torch.Tensor | None,
    gamma: float,
) -> torch.Tensor:
    """Bellman target ``r + γ·(1 − terminated)·min(Q1', Q2')``. Truncation is *not* a terminal: it bootstraps."""
    next_q = next_q1 if next_q2 is None else torch.minimum(next_q1, next_q2)
    return reward + gamma * (1.0 - terminated) * next_q


def smoothed_target_action(
    target_action: torch.Tensor, noise_std: float, noise_clip: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Target policy smoothing: ``clip(a' + clip(ε, ±c), ±1)`` with ε ~ N(0, σ²)."""
    if noise_std <= 0.0:
        return target_action
    noise = torch.randn(target_action.shape, generator=generator) * noise_std
    return (target_action + noise.clamp(-noise_clip, noise_clip)).clamp(-1.0, 1.0)


class Critic(nn.Module):
    """Q(s, a) from the concatenated normalized observation and action."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], activation: str) -> None:
        super().__init__()
        self.net = mlp([obs_dim + act_dim, *hidden, 1], activation)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, act], dim=-1)).squeeze(-1)


class ReplayBuffer:
    """Preallocated float32 ring buffer of (obs, action, reward, next_obs, terminated) as torch tensors, and with
    ``priv_dim`` the privileged states of obs and next_obs (``priv``, ``next_priv``: sampled after the rest)."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, priv_dim: int = 0) -> None:
        self.capacity = int(capacity)
        self.priv_dim = int(priv_dim)
        self.priv = torch.zeros(self.capacity, priv_dim) if priv_dim else None
        self.next_priv = torch.zeros(self.capacity, priv_dim) if priv_dim else None
        self.obs = torch.zeros(self.capacity, obs_dim)
        self.next_obs = torch.zeros(self.capacity, obs_dim)
        self.act = torch.zeros(self.capacity, act_dim)
        self.rew = torch.zeros(self.capacity)
        self.term = torch.zeros(self.capacity)
        self.pos = 0
        self.size = 0

    def add(self, obs, act, rew, next_obs, terminated, priv=None, next_priv=None) -> None:
        """Add a batch ``(N, ...)`` of transitions (numpy or torch); ``priv``/``next_priv`` iff ``priv_dim``."""
        n = len(rew)
        idx = (torch.arange(n) + self.pos) % self.capacity
        for buf, x in ((self.obs, obs), (self.act, act), (self.rew, rew), (self.next_obs, next_obs), (self.term, terminated)):
            buf[idx] = torch.as_tensor(np.asarray(x, dtype=np.float32))
        if self.priv is not None and self.next_priv is not None:
            if priv is None or next_priv is None:
                raise ValueError("this buffer stores privileged states: add(..., priv=, next_priv=)")
            self.priv[idx] = torch.as_tensor(np.asarray(priv, dtype=np.float32))
            self.next_priv[idx] = torch.as_tensor(np.asarray(next_priv, dtype=np.float32))
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        idx = torch.randint(0, self.size, (batch_size,), generator=generator)
        return self.obs[idx], self.act[idx], self.rew[idx], self.next_obs[idx], self.term[idx], *self.privileged(idx)

    def privileged(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(priv, next_priv)`` of the rows ``idx``, or nothing without privileged states."""
        return () if self.priv is None or self.next_priv is None else (self.priv[idx], self.next_priv[idx])

    def _names(self) -> tuple[str, ...]:
        return ("obs", "act", "rew", "next_obs", "term") + (("priv", "next_priv") if self.priv_dim else ())

    def state_dict(self) -> dict:
        n = self.size
        return {**{name: getattr(self, name)[:n].clone() for name in self._names()}, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        n = min(len(state["rew"]), self.capacity)
        for name in self._names():
            getattr(self, name)[:n] = state[name][:n]
        self.size, self.pos = n, int(state["pos"]) % self.capacity


class TD3Agent:
    """TD3/DDPG learner: ``act`` (exploration), ``observe`` (store), ``update`` (gradient steps when due)."""

    def __init__(self, cfg: TD3Config, obs_dim: int, act_dim: int, normalizer: ObsNormalizer, seed: int = 0,
                 privileged_floor: np.ndarray | None = None) -> None:  # fmt: skip
        self.cfg, self.obs_dim, self.act_dim, self.normalizer = cfg, obs_dim, act_dim, normalizer
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)
        hidden = list(cfg.hidden)
        # asymmetric: the privileged inputs' normalizer (``privileged_floor``: per-field resolutions of the env's
        # privileged layout) and the critics' input width
        self.priv_norm = privileged_normalizer(cfg.privileged_critic, privileged_floor)
        self.priv_dim = self.priv_norm.mean.shape[0] if self.priv_norm is not None else 0
        self._priv_cache: tuple = (-1.0, None, None)
        self.actor = DeterministicActor(obs_dim, act_dim, hidden, cfg.activation)
        self.critics = nn.ModuleList(Critic(obs_dim + self.priv_dim, act_dim, hidden, cfg.activation)
                                     for _ in range(cfg.n_critics))  # fmt: skip
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr_actor)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.lr_critic)
        self.buffer = ReplayBuffer(cfg.buffer_size, obs_dim, act_dim, self.priv_dim)
        self.ou_state: np.ndarray | None = None
        self.n_updates = 0
        self.update_debt = 0.0  # fractional updates owed (updates_per_step · env steps − updates done)
        self.steps_seen = 0
        self._norm_cache: tuple = (-1.0, None, None)

    @property
    def actor_arch(self) -> dict:
        return {"kind": "deterministic", "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "hidden": list(self.cfg.hidden), "activation": self.cfg.activation}  # fmt: skip

    @property
    def phase(self) -> str:
        """``random`` while the warm-up's uniform-random actions fill the buffer, then ``learn``."""
        return "random" if self.steps_seen < self.cfg.learning_starts else "learn"

    at_boundary = True  # off-policy: every collected transition is in the buffer, any step may be checkpointed
    log_every = 1000  # env steps between progress rows unless the run says otherwise

    @property
    def replay(self) -> ReplayBuffer:
        return self.buffer

    def forget_replay(self) -> None:
        """The saved buffer is lost: re-run the random warm-up so the empty buffer fills before learning."""
        self.steps_seen = 0

    def _norm(self, obs: torch.Tensor) -> torch.Tensor:
        """Normalize a sampled raw batch with the current statistics (tensors cached until they change)."""
        nm = self.normalizer
        if not nm.enabled:
            return obs
        if self._norm_cache[0] != nm.count:
            mean = torch.as_tensor(nm.mean, dtype=torch.float32)
            self._norm_cache = (nm.count, mean, torch.as_tensor(nm.std(), dtype=torch.float32))
        _, mean, std = self._norm_cache
        return ((obs - mean) / std).clamp(-nm.clip, nm.clip)

    def critic_input(self, n_obs: torch.Tensor, priv: torch.Tensor | None) -> torch.Tensor:
        """What the critics read besides the action: the normalized observation, ⊕ the normalized privileged
        state of the same step when asymmetric (``priv`` raw, as sampled)."""
        nm = self.priv_norm
        if nm is None or priv is None:
            return n_obs
        if self._priv_cache[0] != nm.count:
            mean = torch.as_tensor(nm.mean, dtype=torch.float32)
            self._priv_cache = (nm.count, mean, torch.as_tensor(nm.std(), dtype=torch.float32))
        _, mean, std = self._priv_cache
        return torch.cat([n_obs, ((priv - mean) / std).clamp(-nm.clip, nm.clip)], dim=-1)

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Exploration actions in [-1, 1] for a batch ``(N, obs_dim)`` of raw observations; with
        ``deterministic`` the actor's own action (no warm-up, no noise)."""
        n = obs.shape[0]
        if deterministic:
            with torch.no_grad():
                return self.actor(torch.as_tensor(self.normalizer(obs))).numpy()
        if self.steps_seen < self.cfg.learning_starts:
            return self.rng.uniform(-1.0, 1.0, (n, self.act_dim)).astype(np.float32)
        with torch.no_grad():
            a = self.actor(torch.as_tensor(self.normalizer(obs))).numpy()
        if self.cfg.noise_type == "ou":
            if self.ou_state is None or self.ou_state.shape[0] != n:
                self.ou_state = np.zeros((n, self.act_dim))
            self.ou_state += -self.cfg.ou_theta * self.ou_state + self.cfg.expl_noise * self.rng.standard_normal((n, self.act_dim))
            noise = self.ou_state
        else:
            noise = self.cfg.expl_noise * self.rng.standard_normal((n, self.act_dim))
        return np.clip(a + noise, -1.0, 1.0).astype(np.float32)

    def observe(self, obs, action, reward, next_obs, terminated, truncated, privileged=None, next_privileged=None):
        """Store one vector step; ``next_obs`` holds the *final* observation for envs whose episode ended (with
        ``privileged_critic``: ``privileged``/``next_privileged``, the ``info["privileged"]`` of both)."""
        self.buffer.add(obs, action, reward, next_obs, terminated, privileged, next_privileged)
        if self.priv_norm is not None:
            self.priv_norm.update(next_privileged)
        self.steps_seen += len(reward)
        self.update_debt += self.cfg.updates_per_step * len(reward)
        if self.ou_state is not None:  # restart the OU process for envs whose episode ended
            self.ou_state[np.logical_or(terminated, truncated)] = 0.0

    @property
    def update_due(self) -> bool:
        """Whether :meth:`update` would run a gradient step now rather than return None."""
        return self._learning and self.update_debt >= 1.0

    @property
    def _learning(self) -> bool:
        return self.steps_seen >= self.cfg.learning_starts and self.buffer.size >= self.cfg.batch_size

    def update(self) -> dict[str, float] | None:
        """Run the gradient updates owed so far; returns mean losses, or None when nothing ran."""
        if not self._learning:
            self.update_debt = 0.0
            return None
        logs: dict[str, list[float]] = {}
        while self.update_debt >= 1.0:
            self.update_debt -= 1.0
            for k, v in self.train_step(*self.buffer.sample(self.cfg.batch_size, self.gen)).items():
                logs.setdefault(k, []).append(v)
        return {k: float(np.mean(v)) for k, v in logs.items()} or None

    def train_step(self, obs, act, rew, next_obs, term, priv=None, next_priv=None) -> dict[str, float]:
        """One critic update (and, every ``policy_delay``, one actor + target update) on a raw batch (with the
        raw privileged states when asymmetric)."""
        cfg = self.cfg
        obs, next_obs = self._norm(obs), self._norm(next_obs)
        c_obs, c_next = self.critic_input(obs, priv), self.critic_input(next_obs, next_priv)
        with torch.no_grad():
            next_act = smoothed_target_action(self.actor_target(next_obs), cfg.target_noise, cfg.noise_clip, self.gen)
            x_next = torch.cat([c_next, next_act], dim=-1)  # one concat shared by the twin critics
            next_qs = [c.net(x_next).squeeze(-1) for c in self.critics_target]  # type: ignore[operator]
            target = td3_target(rew, term, next_qs[0], next_qs[1] if len(next_qs) > 1 else None, cfg.gamma)
        x = torch.cat([c_obs, act], dim=-1)
        qs = [c.net(x).squeeze(-1) for c in self.critics]  # type: ignore[operator]
        return self.critic_and_delayed_actor_step(qs, target, lambda: -self.critics[0](c_obs, self.actor(obs)).mean())

    def critic_and_delayed_actor_step(self, qs: list[torch.Tensor], target: torch.Tensor,
                                      actor_loss: Callable[[], torch.Tensor]) -> dict[str, float]:  # fmt: skip
        """The critic step on the critics' ``qs`` against ``target``, then every ``policy_delay``-th update
        :meth:`delayed_actor_update`; returns the losses. TD3 and LSTM-TD3 share it."""
        critic_loss = torch.stack([nn.functional.mse_loss(q, target) for q in qs]).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        self.n_updates += 1
        out = {"loss/critic": critic_loss.item(), "q/mean": qs[0].detach().mean().item()}
        if self.n_updates % self.cfg.policy_delay == 0:
            out["loss/actor"] = self.delayed_actor_update(actor_loss)
        return out

    def delayed_actor_update(self, actor_loss: Callable[[], torch.Tensor]) -> float:
        """One actor step on ``actor_loss()`` (built with the first critic frozen, so it makes no critic
        gradients), then the polyak step of every target net; returns the loss."""
        critic = self.critics[0]
        for p in critic.parameters():
            p.requires_grad_(False)
        loss = actor_loss()
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        for p in critic.parameters():
            p.requires_grad_(True)
        polyak_update(self.actor_target, self.actor, self.cfg.tau)
        polyak_update(self.critics_target, self.critics, self.cfg.tau)
        return loss.item()

    def state_dict(self) -> dict:
        """Networks, optimizers, RNGs and counters (the replay buffer is saved separately: it is large)."""
        return {
            "actor": self.actor.state_dict(),
            "critics": self.critics.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critics_target": self.critics_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "rng": self.rng.bit_generator.state,
            "gen": self.gen.get_state(),
            "ou_state": None if self.ou_state is None else self.ou_state.tolist(),
            "counters": {"n_updates": self.n_updates, "update_debt": self.update_debt, "steps_seen": self.steps_seen},
            "priv_norm": self.priv_norm.state_dict() if self.priv_norm is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critics.load_state_dict(state["critics"])
        self.actor_target.load_state_dict(state["actor_target"])
        self.critics_target.load_state_dict(state["critics_target"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.rng.bit_generator.state = state["rng"]
        self.gen.set_state(state["gen"])
        self.ou_state = None if state["ou_state"] is None else np.asarray(state["ou_state"])
        c = state["counters"]
        self.n_updates, self.update_debt, self.steps_seen = int(c["n_updates"]), float(c["update_debt"]), int(c["steps_seen"])
        if self.priv_norm is not None:
            self.priv_norm.load_state_dict(state["priv_norm"])

