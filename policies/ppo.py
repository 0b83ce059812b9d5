"""PPO (Schulman et al. 2017) with GAE(λ), clipped surrogate, optional value clipping, entropy bonus,
advantage normalization, minibatch epochs, grad-norm clipping and linear LR annealing.

Gaussian policy (state-independent log-std, actions clipped to [-1, 1] by :meth:`GaussianActor.to_env`) or Beta
policy (bounded, mapped to [-1, 1]). Observations are normalized when acted on; rewards are optionally scaled
by the running std of the discounted return (as SB3's VecNormalize, which rl-zoo uses for BipedalWalker).

With ``expert`` set (the knob preset), PPO starts from a DAgger warm start on a scripted expert and keeps a
behaviour-cloning term in its loss (``policies.imitation``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from policies.hparams import build, preset_values
from policies.imitation import DAggerData, Expert, bc_loss, expert_actions, first_linear, ignore_inputs_
from policies.networks import ACTIVATIONS, BetaActor, GaussianActor, mlp
from policies.normalizer import ObsNormalizer
from sim.config import option, validate
from sim.errors import UserError


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyper-parameters: the --ppo-* flags of ``s2r train --algo ppo``."""

    n_steps: int = option(2048, "env steps per sub-env per rollout", above=0, flag="--ppo-n-steps")
    batch_size: int = option(64, "minibatch size, transitions", above=0, flag="--ppo-batch-size")
    n_epochs: int = option(10, "passes over each rollout", above=0, flag="--ppo-n-epochs")
    gamma: float = option(0.99, "discount per control step", low=0, high=1, flag="--ppo-gamma")
    gae_lambda: float = option(0.95, "GAE lambda", low=0, high=1, flag="--ppo-gae-lambda")
    clip_range: float = option(0.2, "policy ratio clip", above=0, flag="--ppo-clip-range")
    clip_range_vf: float | None = option(None, "value clip (none: no value clipping)", above=0,
                                         flag="--ppo-clip-range-vf")
    ent_coef: float = option(0.0, "weight of the entropy bonus", flag="--ppo-ent-coef")
    vf_coef: float = option(0.5, "weight of the value loss", low=0, flag="--ppo-vf-coef")
    max_grad_norm: float = option(0.5, "gradient norm clip", above=0, flag="--ppo-max-grad-norm")
    lr: float = option(3e-4, "learning rate (Adam)", above=0, flag="--ppo-lr")
    anneal_lr: bool = option(False, "linear learning-rate decay to 0 over the run's --steps", flag="--ppo-anneal-lr")
    normalize_advantage: bool = option(True, "normalize advantages per minibatch", flag="--ppo-normalize-advantage")
    distribution: str = option("gaussian", "action distribution", choices=("gaussian", "beta"),
                               flag="--ppo-distribution")
    log_std_init: float = option(0.0, "initial log std of the gaussian policy", flag="--ppo-log-std-init")
    hidden: tuple[int, ...] = option((64, 64), "hidden layer widths of actor and critic", flag="--ppo-hidden")
    activation: str = option("tanh", "hidden-layer activation", choices=tuple(ACTIVATIONS), flag="--ppo-activation")
    normalize_obs: bool = option(True, "running mean/std observation normalizer (folded into the export)",
                                 flag="--ppo-normalize-obs")
    normalize_reward: bool = option(True, "scale rewards by the running std of the discounted return",
                                    flag="--ppo-normalize-reward")
    num_envs: int = option(1, "the preset's preferred number of sub-envs (the CLI's --num-envs overrides)", above=0,
                           flag="--ppo-num-envs")
    # learning from a scripted expert (policies.imitation): DAgger warm start, then a BC term in the PPO loss
    expert: str | None = option(None, "name of the env's scripted expert (sim.EXPERTS); none: pure PPO",
                                flag="--ppo-expert")
    imitation_steps: int = option(0, "env steps of DAgger before PPO starts (part of --steps)", low=0,
                                  flag="--ppo-imitation-steps")
    imitation_expert_steps: int = option(16_000, "of those, the first ones driven by the expert alone", low=0,
                                         flag="--ppo-imitation-expert-steps")
    imitation_iter_steps: int = option(8_000, "env steps between DAgger refits", above=0,
                                       flag="--ppo-imitation-iter-steps")
    imitation_epochs: int = option(15, "passes over the aggregate data per refit (twice that for the last one)",
                                   above=0, flag="--ppo-imitation-epochs")
    imitation_lr: float = option(1e-3, "learning rate of the DAgger refits (Adam)", above=0,
                                 flag="--ppo-imitation-lr")
    bc_coef: float = option(0.0, "weight of the behaviour-cloning MSE to the expert's action in the PPO loss", low=0,
                            flag="--ppo-bc-coef")
    actor_ignores: tuple[int, ...] = option((), "observation indices the actor does not see (zero input weights)",
                                            flag="--ppo-actor-ignores")

    def __post_init__(self) -> None:
        validate(self)
        if (self.imitation_steps > 0 or self.bc_coef > 0) and self.expert is None:
            raise UserError("imitation_steps and bc_coef need an expert: set --ppo-expert NAME (e.g. knob_gait), "
                             "or --ppo-imitation-steps 0 --ppo-bc-coef 0 for pure PPO")
        if self.expert is not None and self.distribution != "gaussian":
            raise UserError("learning from an expert needs the gaussian policy (--ppo-distribution gaussian)")


def ppo_preset(env_id: str) -> PPOConfig:
    """The env's preset (``policies/presets/*_ppo.yaml``); SB3-like defaults for any other continuous env."""
    values = preset_values("ppo").get(env_id)
    return PPOConfig() if values is None else build(PPOConfig, values, f"PPO preset for {env_id}")


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
    # TD errors and decay factors for the whole rollout at once; only the backward recursion is a loop, run
    # in numpy (torch's per-op overhead dominates on rows this small: BENCHMARKS.md, Figures moved out of code
    # comments). The same float32 arithmetic.
    delta = (rewards + gamma * (1.0 - terminated) * next_values - values).numpy()
    decay = (gamma * lam * (1.0 - episode_end)).numpy()
    adv = np.empty_like(delta)
    last = np.zeros_like(delta[0])
    for t in range(delta.shape[0] - 1, -1, -1):
        last = delta[t] + decay[t] * last
        adv[t] = last
    adv_t = torch.from_numpy(adv)
    return adv_t, adv_t + values


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


def clip_grad_norm_(params: Sequence[torch.Tensor], max_norm: float) -> None:
    """``nn.utils.clip_grad_norm_(params, max_norm)`` for parameters on one device, op for op (the same numbers),
    without its per-call grouping of tensors by device and dtype — as costly as the math on nets this small."""
    grads = [p.grad for p in params if p.grad is not None]
    with torch.no_grad():
        total_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
        torch._foreach_mul_(grads, torch.clamp(max_norm / (total_norm + 1e-6), max=1.0))


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
        expert: Expert | None = None,
    ) -> None:
        if (cfg.expert is None) != (expert is None):
            raise ValueError(f"config names expert {cfg.expert!r} but the agent got {'one' if expert else 'none'}")
        self.cfg, self.obs_dim, self.act_dim, self.normalizer = cfg, obs_dim, act_dim, normalizer
        self.num_envs, self.total_steps = num_envs, total_steps
        self.gen = torch.Generator().manual_seed(seed)
        hidden = list(cfg.hidden)
        if cfg.distribution == "beta":
            self.actor: GaussianActor | BetaActor = BetaActor(obs_dim, act_dim, hidden, cfg.activation)
        else:
            self.actor = GaussianActor(obs_dim, act_dim, hidden, cfg.activation, cfg.log_std_init)
        self.critic = mlp([obs_dim, *hidden, 1], cfg.activation, out_gain=1.0)
        if any(not 0 <= i < obs_dim for i in cfg.actor_ignores):
            raise UserError(f"actor_ignores {cfg.actor_ignores} must be observation indices in [0, {obs_dim})")
        self.ignore = torch.tensor(cfg.actor_ignores, dtype=torch.long)
        self.input_layer = first_linear(self.actor.net)
        ignore_inputs_(self.input_layer, self.ignore)
        self.expert = expert
        self.dagger = (
            DAggerData(cfg.imitation_steps + num_envs, obs_dim, act_dim, list(self.actor.net.parameters()),
                       cfg.imitation_lr) if cfg.imitation_steps > 0 else None
        )  # fmt: skip
        self.next_fit = cfg.imitation_iter_steps  # steps_seen at the next DAgger refit
        self.params = [*self.actor.parameters(), *self.critic.parameters()]
        # fused: one kernel per parameter for the whole Adam step — the same update rule (it rounds differently
        # from the per-op path in the last bit), far cheaper per step than the default per-op loop
        # (BENCHMARKS.md, Learners)
        self.opt = torch.optim.Adam(self.params, lr=cfg.lr, eps=1e-5, fused=True)
        self.reward_scaler = RewardScaler(num_envs, cfg.gamma) if cfg.normalize_reward else None
        T, N = cfg.n_steps, num_envs
        # The rollout stores only what the envs and the sampler produce; the log-probabilities and values of
        # the rollout policy are computed for the whole buffer at the start of update(), in one batched
        # forward pass each, before any gradient step (the networks are unchanged since the actions were
        # drawn: the same numbers as computing them step by step, at a fraction of the per-call overhead).
        self.buf = {
            "obs": torch.zeros(T, N, obs_dim), "next_obs": torch.zeros(T, N, obs_dim),
            "raw_act": torch.zeros(T, N, act_dim), "reward": torch.zeros(T, N), "term": torch.zeros(T, N),
            "end": torch.zeros(T, N),
        }  # fmt: skip
        if cfg.bc_coef > 0:
            self.buf["expert_act"] = torch.zeros(T, N, act_dim)
        # numpy views of the same memory: the rollout writes through these (a numpy row assignment costs a
        # fraction of a torch __setitem__), the update reads the tensors
        self.np_buf = {k: v.numpy() for k, v in self.buf.items()}
        self.obs_rows = list(self.buf["obs"])  # per-step views, the policy's input
        self.t = 0
        self.n_updates = 0
        self.steps_seen = 0

    @property
    def actor_arch(self) -> dict:
        return {"kind": self.cfg.distribution, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "hidden": list(self.cfg.hidden), "activation": self.cfg.activation}  # fmt: skip

    @property
    def imitating(self) -> bool:
        """True during the DAgger warm start (no PPO rollouts are collected then)."""
        return self.steps_seen < self.cfg.imitation_steps

    @property
    def phase(self) -> str:
        """``expert`` (DAgger warm start, the expert acts), ``dagger`` (the learner acts deterministically, refits
        every ``imitation_iter_steps``), ``dagger-fit`` (the longer final refit is due), then ``learn`` (PPO)."""
        if self.imitating:
            return "expert" if self.steps_seen < self.cfg.imitation_expert_steps else "dagger"
        return "dagger-fit" if self.dagger is not None else "learn"

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Sample actions for raw observations ``(N, obs_dim)``; records what the update needs."""
        if self.imitating:
            assert self.dagger is not None and self.expert is not None
            labels = expert_actions(self.expert, obs)
            self.dagger.add(obs, labels)
            if self.steps_seen < self.cfg.imitation_expert_steps:
                return labels
            with torch.inference_mode():  # DAgger: the learner drives (its deterministic action)
                return self.actor.deterministic(torch.as_tensor(self.normalizer(obs))).numpy()
        if "expert_act" in self.np_buf:  # the BC term's labels; without it the expert is not asked at all
            assert self.expert is not None
            self.np_buf["expert_act"][self.t] = expert_actions(self.expert, obs)
        self.np_buf["obs"][self.t] = self.normalizer(obs)
        with torch.inference_mode():
            raw = self.actor.sample(self.obs_rows[self.t])  # a view of the row just written
            self.np_buf["raw_act"][self.t] = raw.numpy()
            return self.actor.to_env(raw).numpy()

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        """Store the outcome of the last :meth:`act` (``next_obs`` = final obs where an episode ended)."""
        del obs, action  # recorded by act(), normalized as the policy saw them
        if self.imitating:
            self.steps_seen += len(reward)
            return
        b = self.np_buf
        end = np.logical_or(terminated, truncated)
        r = self.reward_scaler(np.asarray(reward, dtype=np.float64), end) if self.reward_scaler else reward
        b["reward"][self.t] = r  # float32 buffers: numpy casts on assignment
        b["term"][self.t] = terminated
        b["end"][self.t] = end
        b["next_obs"][self.t] = self.normalizer(next_obs)
        self.t += 1
        self.steps_seen += len(reward)

    @property
    def _refit_due(self) -> bool:
        return self.dagger is not None and (self.steps_seen >= self.next_fit or not self.imitating)

    @property
    def update_due(self) -> bool:
        """Whether :meth:`update` would train now (a full rollout or a DAgger refit) rather than return None."""
        return self._refit_due or self.t >= self.cfg.n_steps

    def update(self) -> dict[str, float] | None:
        """When the rollout is full: GAE, then ``n_epochs`` of minibatch updates; during the DAgger warm start,
        a refit every ``imitation_iter_steps`` (and a longer one at its end). Else None."""
        cfg, b = self.cfg, self.buf
        if self._refit_due:
            assert self.dagger is not None
            last = not self.imitating
            epochs = cfg.imitation_epochs * (2 if last else 1)
            fit_loss = self.dagger.fit(self.actor.net, self.normalizer, epochs, 256, self.gen, self.ignore)
            self.next_fit += cfg.imitation_iter_steps
            if last:
                self.dagger = None  # PPO from here on: the data is not needed again
                # PPO fine-tunes a policy fitted to these input statistics: a normalizer still drifting with
                # the states that PPO and ADR's widening ranges visit would shift every input under it (the
                # knob lost up to half its success that way, with a learning rate too small to follow)
                self.normalizer.frozen = True
            return {"loss/imitation": fit_loss}
        if self.t < self.cfg.n_steps:
            return None
        self.t = 0
        keys: tuple[str, ...] = ("obs", "raw_act", "logp", "value", "adv", "ret")
        if cfg.bc_coef > 0:
            keys += ("expert_act",)
        flat = {k: b[k].flatten(0, 1) for k in ("obs", "raw_act", *keys[6:])}
        with torch.no_grad():  # the rollout policy's numbers (see __init__), then GAE
            flat["logp"] = self.actor.log_prob_entropy(flat["obs"], flat["raw_act"])[0]
            values = self.critic(b["obs"]).squeeze(-1)
            next_values = self.critic(b["next_obs"]).squeeze(-1)
            adv, ret = gae(b["reward"], values, next_values, b["term"], b["end"], cfg.gamma, cfg.gae_lambda)
        flat["value"], flat["adv"], flat["ret"] = values.flatten(), adv.flatten(), ret.flatten()
        if cfg.anneal_lr:
            frac = max(0.0, 1.0 - self.steps_seen / max(1, self.total_steps))
            for g in self.opt.param_groups:
                g["lr"] = cfg.lr * frac
        n = flat["adv"].shape[0]
        sums: dict[str, float] = {}
        count = 0
        for _ in range(cfg.n_epochs):
            perm = torch.randperm(n, generator=self.gen)
            # one gather per array and epoch; minibatch i is then a contiguous slice (a view) holding the same
            # rows as indexing with perm[i * batch_size : (i + 1) * batch_size]
            shuffled = [flat[k][perm] for k in keys]
            for start in range(0, n, cfg.batch_size):
                obs, raw_act, old_logp, old_v, mb_adv, mb_ret, *mb_expert = (
                    x[start : start + cfg.batch_size] for x in shuffled
                )
                if cfg.normalize_advantage and len(mb_adv) > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                new_logp, entropy = self.actor.log_prob_entropy(obs, raw_act)
                if cfg.ent_coef == 0.0:  # logged only: skip the backward pass through a zero-weighted term
                    entropy = entropy.detach()
                new_v = self.critic(obs).squeeze(-1)
                loss, terms = ppo_loss(new_logp, old_logp, mb_adv, new_v, old_v, mb_ret, entropy, cfg.clip_range,
                                       cfg.clip_range_vf, cfg.ent_coef, cfg.vf_coef)  # fmt: skip
                if mb_expert:
                    terms["loss/bc"] = bc_loss(self.actor.net(obs), mb_expert[0])
                    loss = loss + cfg.bc_coef * terms["loss/bc"]
                for p in self.params:  # = opt.zero_grad(set_to_none=True) without its per-call profiler hooks
                    p.grad = None
                loss.backward()
                ignore_inputs_(self.input_layer, self.ignore)
                clip_grad_norm_(self.params, cfg.max_grad_norm)
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
            "counters": {"n_updates": self.n_updates, "steps_seen": self.steps_seen, "next_fit": self.next_fit},
            "dagger": self.dagger.state_dict() if self.dagger is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.opt.load_state_dict(state["opt"])
        for g in self.opt.param_groups:  # how to compute is this code's choice, not the checkpoint's
            g["fused"], g["foreach"] = True, None
        self.gen.set_state(state["gen"])
        if self.reward_scaler and state["reward_scaler"]:
            self.reward_scaler.load_state_dict(state["reward_scaler"])
        self.n_updates = int(state["counters"]["n_updates"])
        self.steps_seen = int(state["counters"]["steps_seen"])
        self.next_fit = int(state["counters"].get("next_fit", self.cfg.imitation_iter_steps))
        if state.get("dagger") is None:
            self.dagger = None  # the warm start is over (or there is none)
            self.normalizer.frozen = self.cfg.imitation_steps > 0
        elif self.dagger is not None:
            self.dagger.load_state_dict(state["dagger"])
        self.t = 0
