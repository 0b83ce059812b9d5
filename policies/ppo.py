"""PPO (Schulman et al. 2017) with GAE(λ), clipped surrogate, optional value clipping, entropy bonus,
advantage normalization, minibatch epochs, grad-norm clipping and linear LR annealing.

Gaussian policy (state-independent log-std, actions clipped to [-1, 1] by :meth:`GaussianActor.to_env`) or Beta
policy (bounded, mapped to [-1, 1]). Observations are normalized when acted on; rewards are optionally scaled
by the running std of the discounted return (as SB3's VecNormalize, which rl-zoo uses for BipedalWalker).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from policies.networks import BetaActor, GaussianActor, mlp
from policies.normalizer import ObsNormalizer


@dataclass(frozen=True)
class PPOConfig:
    n_steps: int = 2048  # env steps per sub-env per rollout
    batch_size: int = 64  # minibatch size, transitions
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    clip_range_vf: float | None = None  # None: no value clipping
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    lr: float = 3e-4
    anneal_lr: bool = False  # linear decay to 0 over the run's --steps
    normalize_advantage: bool = True
    distribution: str = "gaussian"  # or "beta"
    log_std_init: float = 0.0
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    normalize_obs: bool = True
    normalize_reward: bool = True
    num_envs: int = 1  # the preset's preferred number of sub-envs (the CLI's --num-envs overrides)

    def __post_init__(self) -> None:
        if self.distribution not in ("gaussian", "beta"):
            raise ValueError(f"distribution must be 'gaussian' or 'beta', got '{self.distribution}'")
        if self.n_steps < 1 or self.batch_size < 1 or self.n_epochs < 1:
            raise ValueError("n_steps, batch_size and n_epochs must be >= 1")


PPO_PRESETS: dict[str, PPOConfig] = {
    # rl-zoo (hyperparams/ppo.yml)
    "Pendulum-v1": PPOConfig(n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0, lr=1e-3,
                             clip_range=0.2, num_envs=4, normalize_obs=False, normalize_reward=False),
    "BipedalWalker-v3": PPOConfig(n_steps=2048, batch_size=64, gamma=0.999, gae_lambda=0.95, n_epochs=10,
                                  ent_coef=0.001, lr=2.5e-4, clip_range=0.18, num_envs=32),
    # ours: fewer, larger minibatches (same samples, far less per-update overhead on 2 cores)
    "s2r/Biped-v0": PPOConfig(n_steps=512, batch_size=512, n_epochs=10, gamma=0.99, gae_lambda=0.95, lr=3e-4,
                              ent_coef=0.0, anneal_lr=True, log_std_init=-0.5, num_envs=8, hidden=(128, 128)),
    "s2r/BipedRough-v0": PPOConfig(n_steps=512, batch_size=512, n_epochs=10, lr=3e-4, anneal_lr=True,
                                   log_std_init=-0.5, num_envs=8, hidden=(128, 128)),
    "s2r/BipedHardcore-v0": PPOConfig(n_steps=512, batch_size=512, n_epochs=10, lr=2.5e-4, anneal_lr=True,
                                      log_std_init=-0.5, num_envs=8, hidden=(256, 256)),
    "s2r/Knob-v0": PPOConfig(n_steps=400, batch_size=400, n_epochs=10, gamma=0.98, lr=3e-4, anneal_lr=True,
                             log_std_init=-0.5, num_envs=8, hidden=(128, 128)),
}  # fmt: skip


def ppo_preset(env_id: str) -> PPOConfig:
    """Preset for an env; SB3-like defaults for any other continuous env."""
    return PPO_PRESETS.get(env_id, PPOConfig())


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    episode_end: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over a ``(T, N)`` rollout → (advantages, returns).

    ``next_values[t]`` is V of the observation after step t (the *final* observation when the episode ended
    there). A termination cuts the bootstrap; a truncation (time limit) still bootstraps from V(final obs);
    either one stops the λ-recursion from leaking into the next episode.
    """
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        delta = rewards[t] + gamma * (1.0 - terminated[t]) * next_values[t] - values[t]
        last = delta + gamma * lam * (1.0 - episode_end[t]) * last
        adv[t] = last
    return adv, adv + values


def ppo_loss(
    new_logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    clip_range: float,
    clip_range_vf: float | None,
    ent_coef: float,
    vf_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate + (optionally clipped) value loss − entropy bonus. Returns (total, terms)."""
    ratio = torch.exp(new_logp - old_logp)
    policy_loss = -torch.minimum(ratio * advantages, ratio.clamp(1 - clip_range, 1 + clip_range) * advantages).mean()
    if clip_range_vf is None:
        value_loss = 0.5 * ((new_values - returns) ** 2).mean()
    else:  # PPO2-style: the pessimistic (max) of clipped and unclipped errors
        clipped = old_values + (new_values - old_values).clamp(-clip_range_vf, clip_range_vf)
        value_loss = 0.5 * torch.maximum((new_values - returns) ** 2, (clipped - returns) ** 2).mean()
    entropy_mean = entropy.mean()
    total = policy_loss + vf_coef * value_loss - ent_coef * entropy_mean
    with torch.no_grad():
        approx_kl = ((ratio - 1) - (new_logp - old_logp)).mean()  # Schulman's k3 estimator
        clip_frac = ((ratio - 1).abs() > clip_range).float().mean()
    return total, {"loss/policy": policy_loss, "loss/value": value_loss, "entropy": entropy_mean,
                   "approx_kl": approx_kl, "clip_frac": clip_frac}  # fmt: skip


class RewardScaler:
    """Divides rewards by the running std of the discounted return (per sub-env return, pooled variance)."""

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0) -> None:
        self.ret = np.zeros(num_envs)
        self.stats = ObsNormalizer(1)
        self.gamma, self.clip = gamma, clip

    def __call__(self, reward: np.ndarray, episode_end: np.ndarray) -> np.ndarray:
        self.ret = self.ret * self.gamma + reward
        self.stats.update(self.ret[:, None])
        self.ret[episode_end] = 0.0
        return np.clip(reward / np.sqrt(self.stats.var[0] + 1e-8), -self.clip, self.clip)

    def state_dict(self) -> dict:
        return {"ret": self.ret.tolist(), "stats": self.stats.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.ret = np.asarray(state["ret"], dtype=np.float64)
        self.stats.load_state_dict(state["stats"])


class PPOAgent:
    """PPO learner: ``act`` samples and records, ``observe`` stores, ``update`` trains once a rollout is full."""

    def __init__(
        self,
        cfg: PPOConfig,
        obs_dim: int,
        act_dim: int,
        normalizer: ObsNormalizer,
        num_envs: int,
        total_steps: int,
        seed: int = 0,
    ) -> None:
        self.cfg, self.obs_dim, self.act_dim, self.normalizer = cfg, obs_dim, act_dim, normalizer
        self.num_envs, self.total_steps = num_envs, total_steps
        self.gen = torch.Generator().manual_seed(seed)
        hidden = list(cfg.hidden)
        if cfg.distribution == "beta":
            self.actor: GaussianActor | BetaActor = BetaActor(obs_dim, act_dim, hidden, cfg.activation)
        else:
            self.actor = GaussianActor(obs_dim, act_dim, hidden, cfg.activation, cfg.log_std_init)
        self.critic = mlp([obs_dim, *hidden, 1], cfg.activation, out_gain=1.0)
        self.params = [*self.actor.parameters(), *self.critic.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=cfg.lr, eps=1e-5)
        self.reward_scaler = RewardScaler(num_envs, cfg.gamma) if cfg.normalize_reward else None
        T, N = cfg.n_steps, num_envs
        self.buf = {
            "obs": torch.zeros(T, N, obs_dim), "next_obs": torch.zeros(T, N, obs_dim),
            "raw_act": torch.zeros(T, N, act_dim), "logp": torch.zeros(T, N), "value": torch.zeros(T, N),
            "reward": torch.zeros(T, N), "term": torch.zeros(T, N), "end": torch.zeros(T, N),
        }  # fmt: skip
        self.t = 0
        self.n_updates = 0
        self.steps_seen = 0

    @property
    def actor_arch(self) -> dict:
        return {"kind": self.cfg.distribution, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "hidden": list(self.cfg.hidden), "activation": self.cfg.activation}  # fmt: skip

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Sample actions for raw observations ``(N, obs_dim)``; records what the update needs."""
        x = torch.as_tensor(self.normalizer(obs))
        with torch.no_grad():
            dist = self.actor.dist(x)
            raw = dist.sample()
            if self.cfg.distribution == "beta":  # log_prob(0 or 1) is -inf for alpha, beta > 1
                raw = raw.clamp(1e-6, 1 - 1e-6)
            self.buf["logp"][self.t] = dist.log_prob(raw).sum(-1)
            self.buf["value"][self.t] = self.critic(x).squeeze(-1)
        self.buf["obs"][self.t] = x
        self.buf["raw_act"][self.t] = raw
        return self.actor.to_env(raw).numpy()

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        """Store the outcome of the last :meth:`act` (``next_obs`` = final obs where an episode ended)."""
        del obs, action  # recorded by act(), normalized as the policy saw them
        end = np.logical_or(terminated, truncated)
        r = self.reward_scaler(np.asarray(reward, dtype=np.float64), end) if self.reward_scaler else reward
        self.buf["reward"][self.t] = torch.as_tensor(np.asarray(r, dtype=np.float32))
        self.buf["term"][self.t] = torch.as_tensor(np.asarray(terminated, dtype=np.float32))
        self.buf["end"][self.t] = torch.as_tensor(end.astype(np.float32))
        self.buf["next_obs"][self.t] = torch.as_tensor(self.normalizer(next_obs))
        self.t += 1
        self.steps_seen += len(reward)

    def update(self) -> dict[str, float] | None:
        """When the rollout is full: GAE, then ``n_epochs`` of minibatch updates. Else None."""
        if self.t < self.cfg.n_steps:
            return None
        cfg, b = self.cfg, self.buf
        self.t = 0
        with torch.no_grad():
            next_values = self.critic(b["next_obs"]).squeeze(-1)
            adv, ret = gae(b["reward"], b["value"], next_values, b["term"], b["end"], cfg.gamma, cfg.gae_lambda)
        flat = {k: b[k].flatten(0, 1) for k in ("obs", "raw_act", "logp", "value")}
        flat["adv"], flat["ret"] = adv.flatten(), ret.flatten()
        if cfg.anneal_lr:
            frac = max(0.0, 1.0 - self.steps_seen / max(1, self.total_steps))
            for g in self.opt.param_groups:
                g["lr"] = cfg.lr * frac
        n = flat["adv"].shape[0]
        sums: dict[str, float] = {}
        count = 0
        for _ in range(cfg.n_epochs):
            perm = torch.randperm(n, generator=self.gen)
            for start in range(0, n, cfg.batch_size):
                idx = perm[start : start + cfg.batch_size]
                mb_adv = flat["adv"][idx]
                if cfg.normalize_advantage and len(idx) > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                dist = self.actor.dist(flat["obs"][idx])
                new_logp = dist.log_prob(flat["raw_act"][idx]).sum(-1)
                new_v = self.critic(flat["obs"][idx]).squeeze(-1)
                loss, terms = ppo_loss(new_logp, flat["logp"][idx], mb_adv, new_v, flat["value"][idx],
                                       flat["ret"][idx], dist.entropy().sum(-1), cfg.clip_range,
                                       cfg.clip_range_vf, cfg.ent_coef, cfg.vf_coef)  # fmt: skip
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
                self.opt.step()
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v.item()
                count += 1
        self.n_updates += 1
        var_y = flat["ret"].var()
        out = {k: v / count for k, v in sums.items()}
        out["explained_var"] = float(1 - (flat["ret"] - flat["value"]).var() / var_y) if var_y > 0 else 0.0
        out["lr"] = self.opt.param_groups[0]["lr"]
        if cfg.distribution == "gaussian":
            out["std"] = self.actor.log_std.detach().exp().mean().item()  # type: ignore[operator]
        return out

    def state_dict(self) -> dict:
        """Networks, optimizer, RNG, counters, reward scaler. A partial rollout is dropped (recollected)."""
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "opt": self.opt.state_dict(),
            "gen": self.gen.get_state(),
            "reward_scaler": self.reward_scaler.state_dict() if self.reward_scaler else None,
            "counters": {"n_updates": self.n_updates, "steps_seen": self.steps_seen},
        }

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])
        if self.reward_scaler and state["reward_scaler"]:
            self.reward_scaler.load_state_dict(state["reward_scaler"])
        self.n_updates = int(state["counters"]["n_updates"])
        self.steps_seen = int(state["counters"]["steps_seen"])
        self.t = 0
