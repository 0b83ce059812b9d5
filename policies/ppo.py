"""PPO (Schulman et al. 2017) with GAE(λ), clipped surrogate, optional value clipping, entropy bonus,
advantage normalization, minibatch epochs, grad-norm clipping and linear LR annealing.

Gaussian policy (state-independent log-std, actions clipped to [-1, 1] by :meth:`GaussianActor.to_env`) or Beta
policy (bounded, mapped to [-1, 1]). Observations are normalized when acted on; rewards are optionally scaled
by the running std of the discounted return (as SB3's VecNormalize, which rl-zoo uses for BipedalWalker).

With ``privileged_critic`` (an asymmetric actor-critic, as OpenAI's Dactyl), the critic reads the observation
joined with the env's privileged state (``info["privileged"]``, layout in ``sim.tasks.<robot>``; normalized by
its own running normalizer, saved with the agent) while the actor sees the observation alone: only the actor is
checkpointed as the policy and exported.

With ``expert`` set (the knob preset), :func:`policies.agent.make_agent` puts a DAgger warm start on a scripted
expert around PPO and a behaviour-cloning term into its loss (both plug-ins of ``policies.imitation``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from policies.hparams import build, preset_values
from policies.imitation import first_linear, ignore_inputs_, obs_indices
from policies.networks import ACTIVATIONS, BetaActor, GaussianActor, mlp
from policies.normalizer import ObsNormalizer, privileged_normalizer
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
    # CAPS smoothness of the policy itself (policies.smoothness; Mysore et al. 2021): 0 = off
    caps_temporal: float = option(0.0, "weight of the CAPS temporal term ‖μ(s_t) − μ(s_t+1)‖² in the PPO loss",
                                  low=0, flag="--ppo-caps-temporal")
    caps_spatial: float = option(0.0, "weight of the CAPS spatial term ‖μ(s) − μ(s + ε)‖² in the PPO loss", low=0,
                                 flag="--ppo-caps-spatial")
    caps_sigma: float = option(0.05, "std of the CAPS spatial noise ε, in normalized observation units", above=0,
                               flag="--ppo-caps-sigma")
    bound_coef: float = option(0.0, "weight of the bounds loss Σ max(|μ| − 1, 0)² on the mean beyond the action clip",
                               low=0, flag="--ppo-bound-coef")
    actor_ignores: tuple[str | int, ...] = option((), "observation fields the actor does not see (zero input "
                                                  "weights): names of the env's observation layout (or indices, "
                                                  "older configs)", flag="--ppo-actor-ignores")
    privileged_critic: bool = option(False, "asymmetric actor-critic: the critic also reads info[\"privileged\"]",
                                     flag="--ppo-privileged-critic")

    def __post_init__(self) -> None:
        validate(self)
        if (self.imitation_steps > 0 or self.bc_coef > 0) and self.expert is None:
            raise UserError("imitation_steps and bc_coef need an expert: set --ppo-expert NAME (e.g. knob_gait), "
                             "or --ppo-imitation-steps 0 --ppo-bc-coef 0 for pure PPO")
        if self.bound_coef > 0 and self.distribution != "gaussian":
            raise UserError("bound_coef bounds a gaussian's mean: use --ppo-distribution gaussian or --ppo-bound-coef 0")
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


def store_privileged(norm: ObsNormalizer, privileged, next_privileged) -> tuple[np.ndarray, np.ndarray]:
    """The privileged states of a step's observations and next observations (both ``(N, dim)``), normalized after
    folding the next ones into the statistics: the inputs an on-policy critic is trained on."""
    if privileged is None or next_privileged is None:
        raise ValueError("an agent with privileged_critic needs observe(..., privileged=, next_privileged=)")
    norm.update(next_privileged)
    return norm(privileged), norm(next_privileged)


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


class ExtraLoss(Protocol):
    """A further term of the PPO loss, plugged in from outside (``policies.imitation.BCTerm``)."""

    name: str  # its progress.csv column
    coef: float  # its weight in the loss
    labels: torch.Tensor  # ``(n_steps, num_envs, ...)``: what ``record`` wrote for each rollout step

    def record(self, t: int, obs: np.ndarray) -> None:
        """Label the raw observations of rollout step ``t``."""
        ...

    def loss(self, actor: nn.Module, obs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The term on a minibatch of normalized observations and their labels."""
        ...


class RolloutSchedule:
    """The Runner-facing schedule of an on-policy agent that collects ``cfg.n_steps`` steps of ``num_envs`` envs
    per update (``self.t``: steps collected so far), and the learner state it checkpoints; PPO and recurrent PPO
    share both."""

    cfg: PPOConfig
    num_envs: int
    t: int
    actor: nn.Module
    critic: nn.Module
    opt: torch.optim.Optimizer
    gen: torch.Generator
    reward_scaler: RewardScaler | None
    priv_norm: ObsNormalizer | None
    n_updates: int
    steps_seen: int

    @property
    def update_due(self) -> bool:
        """Whether :meth:`update` would train now (a full rollout) rather than return None."""
        return self.t >= self.cfg.n_steps

    @property
    def at_boundary(self) -> bool:
        """Between rollouts: a checkpoint then loses no collected transitions."""
        return self.t == 0

    @property
    def log_every(self) -> int:
        return self.cfg.n_steps * self.num_envs

    def forget_replay(self) -> None:
        """Nothing to refill: an on-policy agent keeps no replay buffer."""

    def learner_state(self) -> dict:
        """Networks, optimizer, RNG, reward scaler, counters and the privileged-input normalizer."""
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "opt": self.opt.state_dict(),
            "gen": self.gen.get_state(),
            "reward_scaler": self.reward_scaler.state_dict() if self.reward_scaler else None,
            "counters": {"n_updates": self.n_updates, "steps_seen": self.steps_seen},
            "priv_norm": self.priv_norm.state_dict() if self.priv_norm is not None else None,
        }

    def load_learner_state(self, state: dict) -> None:
        """Back to :meth:`learner_state`'s ``state``, at the start of a rollout."""
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])
        if self.reward_scaler and state["reward_scaler"]:
            self.reward_scaler.load_state_dict(state["reward_scaler"])
        self.n_updates = int(state["counters"]["n_updates"])
        self.steps_seen = int(state["counters"]["steps_seen"])
        if self.priv_norm is not None:
            self.priv_norm.load_state_dict(state["priv_norm"])
        self.t = 0


class PPOAgent(RolloutSchedule):
    """PPO learner (an :class:`policies.agent.Agent`): ``act`` samples and records, ``observe`` stores, ``update``
    trains once a rollout is full. ``extra_losses`` are further terms of the loss (the imitation plug-in's BC
    term): each labels the rollout's observations in ``act`` and adds ``coef × term`` to every minibatch's loss."""

    phase = "learn"  # PPO has no warm-up of its own (policies.imitation adds one)
    replay = None  # on-policy: nothing is kept across updates

    def __init__(
        self,
        cfg: PPOConfig,
        obs_dim: int,
        act_dim: int,
        normalizer: ObsNormalizer,
        num_envs: int,
        total_steps: int,
        seed: int = 0,
        extra_losses: Sequence[ExtraLoss] = (),
        obs_names: Sequence[str] | None = None,
        privileged_floor: np.ndarray | None = None,
    ) -> None:
        self.cfg, self.obs_dim, self.act_dim, self.normalizer = cfg, obs_dim, act_dim, normalizer
        self.num_envs, self.total_steps = num_envs, total_steps
        self.gen = torch.Generator().manual_seed(seed)
        hidden = list(cfg.hidden)
        if cfg.distribution == "beta":
            self.actor: GaussianActor | BetaActor = BetaActor(obs_dim, act_dim, hidden, cfg.activation)
        else:
            self.actor = GaussianActor(obs_dim, act_dim, hidden, cfg.activation, cfg.log_std_init)
        # asymmetric: the critic's extra inputs and their normalizer (``privileged_floor``: the per-field
        # resolutions of the env's privileged layout; its length is the privileged dimension)
        self.priv_norm = privileged_normalizer(cfg.privileged_critic, privileged_floor)
        priv_dim = self.priv_norm.mean.shape[0] if self.priv_norm is not None else 0
        self.critic = mlp([obs_dim + priv_dim, *hidden, 1], cfg.activation, out_gain=1.0)
        self.ignore = torch.tensor(obs_indices(cfg.actor_ignores, obs_names, obs_dim), dtype=torch.long)
        self.input_layer = first_linear(self.actor.net)
        self.mask_ignored_inputs()
        self.extra_losses = list(extra_losses)
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
        if priv_dim:  # the critic's inputs: normalized observation ⊕ normalized privileged state
            self.buf["priv"], self.buf["next_priv"] = torch.zeros(T, N, priv_dim), torch.zeros(T, N, priv_dim)
        # numpy views of the same memory: the rollout writes through these (a numpy row assignment costs a
        # fraction of a torch __setitem__), the update reads the tensors
        self.np_buf = {k: v.numpy() for k, v in self.buf.items()}
        self.obs_rows = list(self.buf["obs"])  # per-step views, the policy's input
        self.t = 0
        self.n_updates = 0
        self.steps_seen = 0

    def mask_ignored_inputs(self) -> None:
        """Zero the actor's input weights on the ``actor_ignores`` inputs (again after a warm start loads weights)."""
        ignore_inputs_(self.input_layer, self.ignore)

    @property
    def actor_arch(self) -> dict:
        return {"kind": self.cfg.distribution, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "hidden": list(self.cfg.hidden), "activation": self.cfg.activation}  # fmt: skip

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Sample actions for raw observations ``(N, obs_dim)`` and record what the update needs; with
        ``deterministic`` the policy's mean action, recording nothing."""
        if deterministic:
            with torch.inference_mode():
                return self.actor.deterministic(torch.as_tensor(self.normalizer(obs))).numpy()
        for term in self.extra_losses:
            term.record(self.t, obs)
        self.np_buf["obs"][self.t] = self.normalizer(obs)
        with torch.inference_mode():
            raw = self.actor.sample(self.obs_rows[self.t])  # a view of the row just written
            self.np_buf["raw_act"][self.t] = raw.numpy()
            return self.actor.to_env(raw).numpy()

    def observe(self, obs, action, reward, next_obs, terminated, truncated, privileged=None, next_privileged=None):
        """Store the outcome of the last :meth:`act` (``next_obs`` = final obs where an episode ended; with
        ``privileged_critic``, ``privileged`` / ``next_privileged`` are ``info["privileged"]`` of both)."""
        del obs, action  # recorded by act(), normalized as the policy saw them
        b = self.np_buf
        if self.priv_norm is not None:
            b["priv"][self.t], b["next_priv"][self.t] = store_privileged(self.priv_norm, privileged, next_privileged)
        end = np.logical_or(terminated, truncated)
        r = self.reward_scaler(np.asarray(reward, dtype=np.float64), end) if self.reward_scaler else reward
        b["reward"][self.t] = r  # float32 buffers: numpy casts on assignment
        b["term"][self.t] = terminated
        b["end"][self.t] = end
        b["next_obs"][self.t] = self.normalizer(next_obs)
        self.t += 1
        self.steps_seen += len(reward)

    def update(self) -> dict[str, float] | None:
        """When the rollout is full: GAE, then ``n_epochs`` of minibatch updates; else None."""
        cfg = self.cfg
        if self.t < cfg.n_steps:
            return None
        self.t = 0
        flat = self._rollout_batch()
        if cfg.anneal_lr:
            frac = max(0.0, 1.0 - self.steps_seen / max(1, self.total_steps))
            for g in self.opt.param_groups:
                g["lr"] = cfg.lr * frac
        out = self._epochs(flat)
        self.n_updates += 1
        var_y = flat["ret"].var()
        out["explained_var"] = float(1 - (flat["ret"] - flat["value"]).var() / var_y) if var_y > 0 else 0.0
        out["lr"] = self.opt.param_groups[0]["lr"]
        if cfg.distribution == "gaussian":
            out["std"] = self.actor.log_std.detach().exp().mean().item()  # type: ignore[operator]
        return out

    def _rollout_batch(self) -> dict[str, torch.Tensor]:
        """The full rollout, flattened to ``(T·N, ...)``: inputs, the rollout policy's log-probabilities and
        values (see ``__init__``), GAE advantages and returns."""
        cfg, b = self.cfg, self.buf
        flat = {k: b[k].flatten(0, 1) for k in ("obs", "raw_act")}
        critic_obs, next_critic_obs = b["obs"], b["next_obs"]
        if "priv" in b:  # asymmetric: the critic reads the observation ⊕ the privileged state
            critic_obs = torch.cat([b["obs"], b["priv"]], dim=-1)
            next_critic_obs = torch.cat([b["next_obs"], b["next_priv"]], dim=-1)
        flat["critic_obs"] = critic_obs.flatten(0, 1)
        with torch.no_grad():
            flat["logp"] = self.actor.log_prob_entropy(flat["obs"], flat["raw_act"])[0]
            values = self.critic(critic_obs).squeeze(-1)
            next_values = self.critic(next_critic_obs).squeeze(-1)
            adv, ret = gae(b["reward"], values, next_values, b["term"], b["end"], cfg.gamma, cfg.gae_lambda)
        flat["value"], flat["adv"], flat["ret"] = values.flatten(), adv.flatten(), ret.flatten()
        return flat

    def _epochs(self, flat: dict[str, torch.Tensor]) -> dict[str, float]:
        """``n_epochs`` passes of shuffled minibatch steps over the rollout (and the extra losses' labels);
        the mean of each loss term."""
        cfg = self.cfg
        columns = [flat[k] for k in ("obs", "raw_act", "logp", "value", "adv", "ret", "critic_obs")]
        columns += [term.labels.flatten(0, 1) for term in self.extra_losses]
        n = len(columns[0])
        sums: dict[str, float] = {}
        count = 0
        for _ in range(cfg.n_epochs):
            perm = torch.randperm(n, generator=self.gen)
            # one gather per array and epoch; minibatch i is then a contiguous slice (a view) holding the same
            # rows as indexing with perm[i * batch_size : (i + 1) * batch_size]
            shuffled = [c[perm] for c in columns]
            for start in range(0, n, cfg.batch_size):
                terms = self._minibatch_step([x[start : start + cfg.batch_size] for x in shuffled])
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v.item()
                count += 1
        return {k: v / count for k, v in sums.items()}

    def _minibatch_step(self, mb: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """One gradient step on a minibatch (the columns of :meth:`_epochs`); returns the loss terms."""
        cfg = self.cfg
        obs, raw_act, old_logp, old_v, mb_adv, mb_ret, critic_obs, *labels = mb
        if cfg.normalize_advantage and len(mb_adv) > 1:
            mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
        new_logp, entropy = self.actor.log_prob_entropy(obs, raw_act)
        if cfg.ent_coef == 0.0:  # logged only: skip the backward pass through a zero-weighted term
            entropy = entropy.detach()
        new_v = self.critic(critic_obs).squeeze(-1)
        loss, terms = ppo_loss(new_logp, old_logp, mb_adv, new_v, old_v, mb_ret, entropy, cfg.clip_range,
                               cfg.clip_range_vf, cfg.ent_coef, cfg.vf_coef)  # fmt: skip
        for term, y in zip(self.extra_losses, labels, strict=True):
            terms[term.name] = term.loss(self.actor, obs, y)
            loss = loss + term.coef * terms[term.name]
        for p in self.params:  # = opt.zero_grad(set_to_none=True) without its per-call profiler hooks
            p.grad = None
        loss.backward()
        self.mask_ignored_inputs()
        clip_grad_norm_(self.params, cfg.max_grad_norm)
        self.opt.step()
        return terms

    def state_dict(self) -> dict:
        """Networks, optimizer, RNG, counters, reward scaler. A partial rollout is dropped (recollected)."""
        return self.learner_state()

    def load_state_dict(self, state: dict) -> None:
        self.load_learner_state(state)
        for g in self.opt.param_groups:  # how to compute is this code's choice, not the checkpoint's
            g["fused"], g["foreach"] = True, None
