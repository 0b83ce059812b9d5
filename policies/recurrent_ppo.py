"""Recurrent PPO: PPO (``policies.ppo``) with an LSTM in the actor and in the critic, trained on sequences.

    o_t ─► LSTM (h, c) ─► MLP ─► mean of a Gaussian (state-independent log-std) ─► a_t        (actor)
    o_t [⊕ privileged_t] ─► LSTM (h, c) ─► MLP ─► V_t                                          (critic)

The rollout stores, for every step, the LSTM states *before* it (actor's and critic's) and whether its
observation starts an episode; the states are zeroed at every episode start. The update cuts the rollout into
chunks of ``seq_len`` steps per sub-env and runs truncated backpropagation through time over each chunk from its
stored initial state, zeroing the state again at each episode start inside a chunk (Hausknecht & Stone's
"bootstrapped sequential updates"; SB3-contrib's RecurrentPPO and rsl_rl do the same). Minibatches are sets of
whole chunks (``batch_size`` transitions = ``batch_size // seq_len`` chunks), shuffled every epoch.

Values are computed while acting (the critic carries its own state through the rollout), the value of the next
observation too — the *final* observation where an episode ended, so a time-limit cut bootstraps from it — and
GAE, the clipped loss and the reward scaler are PPO's own functions. With ``privileged_critic`` the critic reads
the observation joined with the env's privileged state (asymmetric actor-critic); only the actor is exported.

The exported policy (:class:`RecurrentPPOPolicy`) is one LSTM step with explicit state inputs and outputs
(``lstm_h``, ``lstm_c``; initial state zeros), through ``deploy/export_recurrent.py`` like LSTM-TD3's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from policies.checkpoint import InferencePolicy
from policies.hparams import build, preset_values
from policies.imitation import ignore_inputs_, obs_indices
from policies.networks import _normal_log_prob, mlp
from policies.normalizer import ObsNormalizer, privileged_normalizer
from policies.ppo import (
    PPOConfig,
    RewardScaler,
    RolloutSchedule,
    clip_grad_norm_,
    gae,
    ppo_loss,
    store_privileged,
)
from sim.config import option
from sim.errors import UserError

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [B, lstm_hidden]


@dataclass(frozen=True)
class RecurrentPPOConfig(PPOConfig):
    """PPOConfig and the memory: the --rppo-* flags of ``s2r train --algo rppo``."""

    lstm_hidden: int = option(64, "width of the actor's and the critic's LSTM state", above=0,
                              flag="--rppo-lstm-hidden")
    seq_len: int = option(32, "BPTT chunk, control steps (--ppo-n-steps must be a multiple of it)", above=0,
                          flag="--rppo-seq-len")
    hidden: tuple[int, ...] = option((64,), "MLP layers after the LSTM", flag="--ppo-hidden")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_steps % self.seq_len:
            raise UserError(f"--ppo-n-steps {self.n_steps} must be a multiple of --rppo-seq-len {self.seq_len} "
                            "(the rollout is cut into whole sequence chunks)")  # fmt: skip
        if (self.distribution != "gaussian" or self.expert is not None or self.caps_temporal or self.caps_spatial
                or self.bound_coef):
            raise UserError("recurrent PPO has a gaussian policy and no expert, CAPS or bounds terms: drop "
                            "--ppo-distribution/--ppo-expert/--ppo-caps-*/--ppo-bound-coef for --algo rppo")  # fmt: skip


def rppo_preset(env_id: str) -> RecurrentPPOConfig:
    """The env's preset (``policies/presets/*_rppo.yaml``); else its PPO preset's values (rollout, discount,
    learning rate; not the layer sizes) with recurrent PPO's default memory."""
    values = preset_values("rppo").get(env_id)
    if values is None:
        values = {k: v for k, v in preset_values("ppo").get(env_id, {}).items()
                  if k not in ("hidden", "expert", "imitation_steps", "bc_coef", "actor_ignores")}  # fmt: skip
        n_steps, seq = int(values.get("n_steps", PPOConfig.n_steps)), RecurrentPPOConfig.seq_len
        values["n_steps"] = max(seq, n_steps // seq * seq)
    return build(RecurrentPPOConfig, values, f"recurrent PPO preset for {env_id}")


# ------------------------------------------------------------------------------------------------ networks
class RecurrentNet(nn.Module):
    """``x_t`` ─► LSTM ─► MLP ─► ``out``: one step (acting, export) or a sequence with episode starts (training)."""

    def __init__(self, in_dim: int, out_dim: int, lstm_hidden: int, hidden: tuple[int, ...], activation: str,
                 out_gain: float) -> None:  # fmt: skip
        super().__init__()
        self.lstm = nn.LSTM(in_dim, lstm_hidden)
        self.head = mlp([lstm_hidden, *hidden, out_dim], activation, out_gain=out_gain)
        for name, p in self.lstm.named_parameters():  # orthogonal weights, zero biases (as the MLP's)
            nn.init.orthogonal_(p) if name.startswith("weight") else nn.init.zeros_(p)

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """``x [B, in]`` and the state before it → ``out [B, out]`` and the state after."""
        y, (h, c) = self.lstm(x[None], (state[0][None], state[1][None]))
        return self.head(y[0]), (h[0], c[0])

    def unroll(self, x: torch.Tensor, starts: torch.Tensor, state: State) -> torch.Tensor:
        """``x [L, B, in]`` from ``state`` (the state before step 0), zeroing the state before every step ``t > 0``
        whose ``starts[t]`` is set; → ``out [L, B, out]``. One LSTM call per stretch without a start."""
        cuts = [0, *(t for t in range(1, x.shape[0]) if bool(starts[t].any())), x.shape[0]]
        h, c = state[0][None], state[1][None]
        ys = []
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            if a > 0:
                keep = (1.0 - starts[a].to(x.dtype))[None, :, None]
                h, c = h * keep, c * keep
            y, (h, c) = self.lstm(x[a:b], (h, c))
            ys.append(y)
        return self.head(torch.cat(ys))


class RecurrentGaussianActor(nn.Module):
    """The policy: a :class:`RecurrentNet` giving the mean, and a state-independent log-std."""

    def __init__(self, obs_dim: int, act_dim: int, lstm_hidden: int, hidden: tuple[int, ...], activation: str,
                 log_std_init: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.body = RecurrentNet(obs_dim, act_dim, lstm_hidden, hidden, activation, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def log_prob_entropy(self, mean: torch.Tensor, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        std = self.log_std.exp().expand_as(mean)
        entropy = (0.5 + 0.5 * np.log(2 * np.pi) + torch.log(std)).sum(-1)
        return _normal_log_prob(raw, mean, std), entropy


def zero_state(n: int, width: int) -> State:
    return torch.zeros(n, width), torch.zeros(n, width)


def _chunks(x: torch.Tensor, seq_len: int) -> torch.Tensor:
    """``[T, N, ...]`` → ``[L, K, ...]``: chunk ``k = j·N + n`` is steps ``j·L .. j·L+L-1`` of sub-env ``n``."""
    t, n = x.shape[:2]
    return x.reshape(t // seq_len, seq_len, n, *x.shape[2:]).transpose(0, 1).reshape(seq_len, -1, *x.shape[2:])


# ------------------------------------------------------------------------------------------------ learner
class RecurrentPPOAgent(RolloutSchedule):
    """Recurrent PPO learner, with :class:`policies.ppo.PPOAgent`'s contract: ``act`` samples and records,
    ``observe`` stores (and evaluates the critic), ``update`` trains once a rollout is full."""

    cfg: RecurrentPPOConfig
    actor: RecurrentGaussianActor
    critic: RecurrentNet

    phase = "learn"  # no warm-up
    replay = None  # on-policy: nothing is kept across updates

    def __init__(self, cfg: RecurrentPPOConfig, obs_dim: int, act_dim: int, normalizer: ObsNormalizer,
                 num_envs: int, total_steps: int, seed: int = 0, privileged_floor: np.ndarray | None = None,
                 obs_names: Sequence[str] | None = None):  # fmt: skip
        self.cfg, self.obs_dim, self.act_dim, self.normalizer = cfg, obs_dim, act_dim, normalizer
        self.num_envs, self.total_steps = num_envs, total_steps
        self.gen = torch.Generator().manual_seed(seed)
        self.priv_norm = privileged_normalizer(cfg.privileged_critic, privileged_floor)
        priv_dim = self.priv_norm.mean.shape[0] if self.priv_norm is not None else 0
        H = cfg.lstm_hidden
        self.actor = RecurrentGaussianActor(obs_dim, act_dim, H, cfg.hidden, cfg.activation, cfg.log_std_init)
        self.critic = RecurrentNet(obs_dim + priv_dim, 1, H, cfg.hidden, cfg.activation, out_gain=1.0)
        # actor_ignores: zero input-weight columns of the actor's LSTM, kept zero (the critic sees everything)
        self.ignore = torch.tensor(obs_indices(cfg.actor_ignores, obs_names, obs_dim), dtype=torch.long)
        self.mask_ignored_inputs()
        self.params = [*self.actor.parameters(), *self.critic.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=cfg.lr, eps=1e-5)
        self.reward_scaler = RewardScaler(num_envs, cfg.gamma) if cfg.normalize_reward else None
        T, N = cfg.n_steps, num_envs
        self.buf = {
            "obs": torch.zeros(T, N, obs_dim), "critic_obs": torch.zeros(T, N, obs_dim + priv_dim),
            "raw_act": torch.zeros(T, N, act_dim), "logp": torch.zeros(T, N), "value": torch.zeros(T, N),
            "next_value": torch.zeros(T, N), "reward": torch.zeros(T, N), "term": torch.zeros(T, N),
            "end": torch.zeros(T, N), "start": torch.zeros(T, N),
            "actor_h": torch.zeros(T, N, H), "actor_c": torch.zeros(T, N, H),
            "critic_h": torch.zeros(T, N, H), "critic_c": torch.zeros(T, N, H),
        }  # fmt: skip
        # the memory of the episodes in progress: LSTM states before the next step, and which sub-envs' next
        # observation starts an episode
        self.actor_state, self.critic_state = zero_state(N, H), zero_state(N, H)
        self.starts = torch.ones(N)
        self.t = 0
        self.n_updates = 0
        self.steps_seen = 0

    def mask_ignored_inputs(self) -> None:
        """Zero the actor's weights on the ``actor_ignores`` inputs (again after a warm start loads weights)."""
        ignore_inputs_(self.actor.body.lstm, self.ignore, "weight_ih_l0")

    @property
    def actor_arch(self) -> dict:
        c = self.cfg
        return {"kind": "rppo", "obs_dim": self.obs_dim, "act_dim": self.act_dim, "hidden": list(c.hidden),
                "activation": c.activation, "lstm_hidden": c.lstm_hidden}  # fmt: skip

    def reset_memory(self) -> None:
        """Every sub-env starts a new episode (a resumed run's fresh resets): zero states."""
        n, H = self.num_envs, self.cfg.lstm_hidden
        self.actor_state, self.critic_state, self.starts = zero_state(n, H), zero_state(n, H), torch.ones(n)

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Sample actions for raw observations ``(N, obs_dim)``, carrying the actor's LSTM state; with
        ``deterministic`` the mean action (the memory advances alike, nothing is recorded)."""
        b, t = self.buf, self.t
        o = torch.from_numpy(self.normalizer(obs))
        if deterministic:
            with torch.no_grad():
                mean, self.actor_state = self.actor.body.step(o, self.actor_state)
            return mean.clamp(-1.0, 1.0).numpy()
        b["obs"][t], b["start"][t] = o, self.starts
        b["actor_h"][t], b["actor_c"][t] = self.actor_state
        with torch.no_grad():
            mean, self.actor_state = self.actor.body.step(o, self.actor_state)
            std = self.actor.log_std.exp().expand_as(mean)
            raw = torch.normal(mean, std)
            b["raw_act"][t] = raw
            b["logp"][t] = _normal_log_prob(raw, mean, std)
        return raw.clamp(-1.0, 1.0).numpy()

    def observe(self, obs, action, reward, next_obs, terminated, truncated, privileged=None, next_privileged=None):
        """Store the step and evaluate the critic on its observation and on the next one (the final observation
        where an episode ended); zero the memory of sub-envs whose episode ended."""
        del obs, action  # recorded by act(), normalized as the policy saw them
        b, t = self.buf, self.t
        c_obs, c_next = b["obs"][t], torch.from_numpy(self.normalizer(next_obs))
        if self.priv_norm is not None:
            priv, next_priv = store_privileged(self.priv_norm, privileged, next_privileged)
            c_obs = torch.cat([c_obs, torch.from_numpy(priv)], -1)
            c_next = torch.cat([c_next, torch.from_numpy(next_priv)], -1)
        b["critic_obs"][t] = c_obs
        b["critic_h"][t], b["critic_c"][t] = self.critic_state
        with torch.no_grad():
            value, self.critic_state = self.critic.step(c_obs, self.critic_state)
            next_value, _ = self.critic.step(c_next, self.critic_state)
        b["value"][t], b["next_value"][t] = value[:, 0], next_value[:, 0]
        end = np.logical_or(terminated, truncated)
        r = self.reward_scaler(np.asarray(reward, dtype=np.float64), end) if self.reward_scaler else reward
        b["reward"][t] = torch.as_tensor(np.asarray(r, dtype=np.float32))
        b["term"][t] = torch.as_tensor(np.asarray(terminated, dtype=np.float32))
        b["end"][t] = torch.as_tensor(end.astype(np.float32))
        keep = torch.as_tensor(~end, dtype=torch.float32)[:, None]
        self.actor_state = (self.actor_state[0] * keep, self.actor_state[1] * keep)
        self.critic_state = (self.critic_state[0] * keep, self.critic_state[1] * keep)
        self.starts = torch.as_tensor(end.astype(np.float32))
        self.t += 1
        self.steps_seen += len(reward)

    def update(self) -> dict[str, float] | None:
        """When the rollout is full: GAE, then ``n_epochs`` passes of truncated BPTT over shuffled minibatches of
        whole chunks. Else None."""
        cfg, b = self.cfg, self.buf
        if self.t < cfg.n_steps:
            return None
        self.t = 0
        adv, ret = gae(b["reward"], b["value"], b["next_value"], b["term"], b["end"], cfg.gamma, cfg.gae_lambda)
        L = cfg.seq_len
        seq = {k: _chunks(b[k], L) for k in ("obs", "critic_obs", "raw_act", "logp", "value", "start")}
        seq["adv"], seq["ret"] = _chunks(adv, L), _chunks(ret, L)
        init = {k: _chunks(b[k], L)[0] for k in ("actor_h", "actor_c", "critic_h", "critic_c")}  # [K, H]
        if cfg.anneal_lr:
            frac = max(0.0, 1.0 - self.steps_seen / max(1, self.total_steps))
            for g in self.opt.param_groups:
                g["lr"] = cfg.lr * frac
        n_chunks = seq["obs"].shape[1]
        per_batch = max(1, cfg.batch_size // L)
        sums: dict[str, float] = {}
        count = 0
        for _ in range(cfg.n_epochs):
            perm = torch.randperm(n_chunks, generator=self.gen)
            for start in range(0, n_chunks, per_batch):
                idx = perm[start : start + per_batch]
                mb = {k: v[:, idx] for k, v in seq.items()}
                mean = self.actor.body.unroll(mb["obs"], mb["start"], (init["actor_h"][idx], init["actor_c"][idx]))
                new_v = self.critic.unroll(mb["critic_obs"], mb["start"],
                                           (init["critic_h"][idx], init["critic_c"][idx]))[..., 0]  # fmt: skip
                new_logp, entropy = self.actor.log_prob_entropy(mean, mb["raw_act"])
                mb_adv = mb["adv"].reshape(-1)
                if cfg.normalize_advantage and len(mb_adv) > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                loss, terms = ppo_loss(new_logp.reshape(-1), mb["logp"].reshape(-1), mb_adv, new_v.reshape(-1),
                                       mb["value"].reshape(-1), mb["ret"].reshape(-1), entropy.reshape(-1),
                                       cfg.clip_range, cfg.clip_range_vf, cfg.ent_coef, cfg.vf_coef)  # fmt: skip
                for p in self.params:
                    p.grad = None
                loss.backward()
                self.mask_ignored_inputs()
                clip_grad_norm_(self.params, cfg.max_grad_norm)
                self.opt.step()
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v.item()
                count += 1
        self.n_updates += 1
        var_y = ret.var()
        out = {k: v / count for k, v in sums.items()}
        out["explained_var"] = float(1 - (ret - b["value"]).var() / var_y) if var_y > 0 else 0.0
        out["lr"] = self.opt.param_groups[0]["lr"]
        out["std"] = self.actor.log_std.detach().exp().mean().item()
        return out

    def state_dict(self) -> dict:
        """Networks, optimizer, RNG, counters, reward scaler and the memory of the episodes in progress (a
        partial rollout is dropped, as PPO's: checkpoints are taken between rollouts)."""
        memory = {"actor": list(self.actor_state), "critic": list(self.critic_state), "starts": self.starts}
        return {**self.learner_state(), "memory": memory}

    def load_state_dict(self, state: dict) -> None:
        self.load_learner_state(state)
        mem = state["memory"]
        self.actor_state = (mem["actor"][0].clone(), mem["actor"][1].clone())
        self.critic_state = (mem["critic"][0].clone(), mem["critic"][1].clone())
        self.starts = mem["starts"].clone()


# ------------------------------------------------------------------------------------------------ inference
def build_rppo_actor(arch: dict) -> RecurrentGaussianActor:
    """Rebuild an actor from the ``actor_arch`` dict stored in checkpoints (kind ``rppo``)."""
    return RecurrentGaussianActor(int(arch["obs_dim"]), int(arch["act_dim"]), int(arch["lstm_hidden"]),
                                  tuple(arch["hidden"]), arch["activation"])  # fmt: skip


class RecurrentPPOPolicy(InferencePolicy):
    """Raw observation + LSTM state → (deterministic action in [-1, 1], next state): the frozen normalizer and the
    actor's mean. ``forward(obs, lstm_h, lstm_c)`` is ONNX-exportable; :meth:`initial_state` is zeros."""

    STATE_NAMES = ("lstm_h", "lstm_c")

    def __init__(self, actor: RecurrentGaussianActor, obs_mean, obs_var, clip: float, eps: float, meta: dict,
                 std_floor=None) -> None:  # fmt: skip
        super().__init__(actor, obs_mean, obs_var, clip, eps, meta, std_floor)
        self.lstm_hidden = int(meta["actor_arch"]["lstm_hidden"])

    def initial_state(self, batch: int = 1) -> State:
        return zero_state(batch, self.lstm_hidden)

    def state_shapes(self) -> dict[str, list[int]]:
        return {"lstm_h": [self.lstm_hidden], "lstm_c": [self.lstm_hidden]}

    def forward(self, obs: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        if len(state) != 2:
            raise TypeError("a recurrent policy takes (obs, lstm_h, lstm_c); see initial_state()")
        x = ((obs - self.obs_mean) / self.obs_std).clamp(-self.clip, self.clip)
        mean, (h, c) = self.actor.body.step(x, (state[0], state[1]))  # type: ignore[union-attr,operator]
        return mean.clamp(-1.0, 1.0), h, c


def rppo_policy_from_checkpoint(ckpt: dict) -> RecurrentPPOPolicy:
    actor = build_rppo_actor(ckpt["actor_arch"])
    actor.load_state_dict(ckpt["actor"])
    norm = ckpt["normalizer"]
    policy = RecurrentPPOPolicy(actor, norm["mean"], norm["var"], norm["clip"], norm["eps"], ckpt,
                                norm.get("std_floor"))  # fmt: skip
    for p in policy.parameters():
        p.requires_grad_(False)
    return policy.eval()
