"""LSTM-TD3 (Meng, Gorbet and Kulić 2021, "Memory-based Deep Reinforcement Learning for POMDPs").

TD3 whose actor and critics see, beside the current observation, a *memory* of the last ``K`` (observation,
action) pairs of the same episode, read by an LSTM::

    history (o, a)_{t-K..t-1} ─► Linear+ReLU ─► LSTM ─► output at the last valid step ─┐
    current  o_t (critic: o_t, a_t) ─► Linear+ReLU ───────────────────────────────────┴► cat ─► MLP ─► a_t / Q

A history is a fixed-size window, *right-padded*: ``hist_obs[:, :L]`` hold the ``L = hist_len`` most recent
pairs oldest first, the rest are zeros; the LSTM is causal, so the padding after the last valid step never
changes the output read at ``L - 1``, and ``L = 0`` (an episode's first step) gives a zero memory feature.
Histories never cross an episode start. :func:`push_history` advances a window by one step; the training
loop, the replay sampler and the exported ONNX graph all use it, so the state a deployed policy carries is
exactly the state it was trained on. Observations are stored raw and normalized when used (as in TD3).

The replay buffer (:class:`HistoryReplayBuffer`) stores single transitions plus, for each, the serial number
of the previous transition of the same episode, and rebuilds a sample's history by walking those links back;
a link into a slot the ring buffer has since overwritten ends the history there.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from policies.checkpoint import InferencePolicy
from policies.hparams import build, preset_values
from policies.networks import ACTIVATIONS, mlp
from policies.normalizer import ObsNormalizer
from policies.td3 import ReplayBuffer, TD3Agent, TD3Config, smoothed_target_action, td3_target
from sim.config import option


@dataclass(frozen=True)
class LSTMTD3Config(TD3Config):
    """TD3Config and the memory: the --lstm-* flags of ``s2r train --algo lstm-td3``."""

    history_len: int = option(5, "K: (observation, action) pairs of memory, control steps", above=0,
                              flag="--lstm-history-len")
    mem_hidden: int = option(128, "width of the pre-LSTM layer and of the LSTM state", above=0,
                             flag="--lstm-mem-hidden")
    cur_hidden: int = option(128, "width of the current-observation feature layer", above=0, flag="--lstm-cur-hidden")
    hidden: tuple[int, ...] = option((128,), "layers after the memory and current features are joined",
                                     flag="--td3-hidden")


def lstm_td3_preset(env_id: str) -> LSTMTD3Config:
    """The env's preset (``policies/presets/*_lstm-td3.yaml``); for an env without one, its TD3 preset's values
    (discount, buffer, warm-up, normalization; not the network sizes) with LSTM-TD3's default memory."""
    values = preset_values("lstm-td3").get(env_id)
    if values is None:
        values = {k: v for k, v in preset_values("td3").get(env_id, {}).items() if k != "hidden"}
    return build(LSTMTD3Config, values, f"LSTM-TD3 preset for {env_id}")


# ------------------------------------------------------------------------------------------------ history math
def push_history(
    hist_obs: torch.Tensor, hist_act: torch.Tensor, hist_len: torch.Tensor, obs: torch.Tensor, act: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Append ``(obs, act)`` ``[B, ·]`` to right-padded windows ``[B, K, ·]`` of ``hist_len`` ``[B]`` (float)
    valid steps: written at index ``hist_len`` while there is room, else the window shifts left by one.
    Pure tensor ops (ONNX-exportable)."""
    k = hist_obs.shape[1]
    at = (torch.arange(k, dtype=hist_len.dtype)[None, :] == hist_len[:, None])[:, :, None]  # [B, K, 1]
    full = (hist_len >= k)[:, None, None]

    def push(h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        shifted = torch.cat([h[:, 1:], x[:, None]], dim=1)
        return torch.where(full, shifted, torch.where(at, x[:, None], h))

    return push(hist_obs, obs), push(hist_act, act), torch.clamp(hist_len + 1.0, max=float(k))


def empty_history(n: int, k: int, obs_dim: int, act_dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` windows of ``k`` steps holding nothing: zeros and length 0."""
    return torch.zeros(n, k, obs_dim), torch.zeros(n, k, act_dim), torch.zeros(n)


# ------------------------------------------------------------------------------------------------ networks
class MemoryEncoder(nn.Module):
    """(o, a) window → the LSTM output at its last valid step (zeros for an empty window)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.pre = nn.Sequential(nn.Linear(obs_dim + act_dim, hidden), ACTIVATIONS[activation]())
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)

    def forward(self, hist_obs: torch.Tensor, hist_act: torch.Tensor, hist_len: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.pre(torch.cat([hist_obs, hist_act], dim=-1)))
        last = (hist_len - 1.0).clamp(min=0.0).long()[:, None, None].expand(-1, 1, out.shape[-1])
        return out.gather(1, last).squeeze(1) * (hist_len > 0).to(out.dtype)[:, None]


class LSTMActor(nn.Module):
    """μ(o_t, history) in [-1, 1]: memory feature and current-observation feature joined by an MLP, then tanh."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: LSTMTD3Config) -> None:
        super().__init__()
        self.memory = MemoryEncoder(obs_dim, act_dim, cfg.mem_hidden, cfg.activation)
        self.current = nn.Sequential(nn.Linear(obs_dim, cfg.cur_hidden), ACTIVATIONS[cfg.activation]())
        self.head = mlp([cfg.mem_hidden + cfg.cur_hidden, *cfg.hidden, act_dim], cfg.activation)

    def forward(self, obs, hist_obs, hist_act, hist_len) -> torch.Tensor:
        x = torch.cat([self.memory(hist_obs, hist_act, hist_len), self.current(obs)], dim=-1)
        return torch.tanh(self.head(x))


class LSTMCritic(nn.Module):
    """Q(o_t, a_t, history): the actor's structure with (o_t, a_t) in the current branch (asymmetric: o_t joined
    with the privileged state, ``priv_dim`` more inputs; the memory stays the observations')."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: LSTMTD3Config, priv_dim: int = 0) -> None:
        super().__init__()
        self.memory = MemoryEncoder(obs_dim, act_dim, cfg.mem_hidden, cfg.activation)
        self.current = nn.Sequential(nn.Linear(obs_dim + priv_dim + act_dim, cfg.cur_hidden),
                                     ACTIVATIONS[cfg.activation]())  # fmt: skip
        self.head = mlp([cfg.mem_hidden + cfg.cur_hidden, *cfg.hidden, 1], cfg.activation)

    def forward(self, obs, act, hist_obs, hist_act, hist_len) -> torch.Tensor:
        x = torch.cat([self.memory(hist_obs, hist_act, hist_len), self.current(torch.cat([obs, act], -1))], -1)
        return self.head(x).squeeze(-1)


def build_lstm_actor(arch: dict) -> LSTMActor:
    """Rebuild an actor from the ``actor_arch`` dict stored in checkpoints (kind ``lstm-td3``)."""
    cfg = LSTMTD3Config(hidden=tuple(arch["hidden"]), activation=arch["activation"],
                        history_len=int(arch["history_len"]), mem_hidden=int(arch["mem_hidden"]),
                        cur_hidden=int(arch["cur_hidden"]))  # fmt: skip
    return LSTMActor(int(arch["obs_dim"]), int(arch["act_dim"]), cfg)


# ------------------------------------------------------------------------------------------------ replay
class HistoryReplayBuffer(ReplayBuffer):
    """:class:`~policies.td3.ReplayBuffer` whose samples come with the history that preceded them.

    Every transition gets a serial number (``stamp``) and remembers the serial of the previous transition of its
    episode in the same sub-env (``prev``, -1 at an episode start). ``stamp[slot] == s`` tells whether serial
    ``s`` still lives in ``slot = s % capacity``, so links into overwritten slots end a history.
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, history_len: int, priv_dim: int = 0) -> None:
        super().__init__(capacity, obs_dim, act_dim, priv_dim)
        self.k = int(history_len)
        self.stamp = torch.full((self.capacity,), -1, dtype=torch.int64)
        self.prev = torch.full((self.capacity,), -1, dtype=torch.int64)
        self.serial = 0  # the next transition's stamp

    def add_linked(self, obs, act, rew, next_obs, terminated, prev: np.ndarray, priv=None, next_priv=None) -> np.ndarray:
        """Add a batch like :meth:`add`, row ``i`` following serial ``prev[i]`` (-1: an episode start); returns
        the rows' serials."""
        n = len(rew)
        stamps = torch.arange(self.serial, self.serial + n, dtype=torch.int64)
        idx = stamps % self.capacity
        self.stamp[idx] = stamps
        self.prev[idx] = torch.as_tensor(np.asarray(prev, dtype=np.int64))
        self.add(obs, act, rew, next_obs, terminated, priv, next_priv)
        self.serial += n
        return stamps.numpy()

    def history(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded windows (oldest first) of the ``K`` transitions before each slot in ``idx``."""
        b, k = len(idx), self.k
        back_obs, back_act = torch.zeros(b, k, self.obs.shape[1]), torch.zeros(b, k, self.act.shape[1])
        length = torch.zeros(b, dtype=torch.int64)
        alive = torch.ones(b, dtype=torch.bool)
        cur = idx
        for j in range(k):  # newest first
            p = self.prev[cur]
            slot = p.clamp(min=0) % self.capacity
            alive = alive & (p >= 0) & (self.stamp[slot] == p)
            back_obs[:, j] = self.obs[slot] * alive[:, None]
            back_act[:, j] = self.act[slot] * alive[:, None]
            length += alive.long()
            cur = slot
        order = (length[:, None] - 1 - torch.arange(k)[None, :]).clamp(min=0)  # chronological, right-padded
        valid = (torch.arange(k)[None, :] < length[:, None])[:, :, None]
        hist_obs = torch.gather(back_obs, 1, order[:, :, None].expand(-1, -1, back_obs.shape[2])) * valid
        hist_act = torch.gather(back_act, 1, order[:, :, None].expand(-1, -1, back_act.shape[2])) * valid
        return hist_obs, hist_act, length.float()

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        idx = torch.randint(0, self.size, (batch_size,), generator=generator)
        return (self.obs[idx], self.act[idx], self.rew[idx], self.next_obs[idx], self.term[idx], *self.history(idx),
                *self.privileged(idx))  # fmt: skip

    def state_dict(self) -> dict:
        n = self.size
        return {**super().state_dict(), "stamp": self.stamp[:n].clone(), "prev": self.prev[:n].clone(),
                "serial": self.serial}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        n = self.size
        self.stamp[:n], self.prev[:n], self.serial = state["stamp"][:n], state["prev"][:n], int(state["serial"])


# ------------------------------------------------------------------------------------------------ learner
class LSTMTD3Agent(TD3Agent):
    """TD3 with memory: :class:`TD3Agent`'s loop (warm-up, noise, update debt, delayed actor) on
    history-conditioned networks. The agent keeps each sub-env's current window for acting; a resumed run starts
    new episodes, so those windows start empty, while the training histories come from the saved replay buffer."""

    def __init__(self, cfg: LSTMTD3Config, obs_dim: int, act_dim: int, normalizer: ObsNormalizer, seed: int = 0,
                 privileged_floor: np.ndarray | None = None) -> None:  # fmt: skip
        super().__init__(cfg, obs_dim, act_dim, normalizer, seed, privileged_floor)
        self.cfg: LSTMTD3Config = cfg
        self.actor = LSTMActor(obs_dim, act_dim, cfg)  # type: ignore[assignment]
        self.critics = nn.ModuleList(LSTMCritic(obs_dim, act_dim, cfg, self.priv_dim) for _ in range(cfg.n_critics))
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr_actor)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.lr_critic)
        self.buffer: HistoryReplayBuffer = HistoryReplayBuffer(cfg.buffer_size, obs_dim, act_dim, cfg.history_len,
                                                               self.priv_dim)  # fmt: skip
        self.window: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # acting history per sub-env
        self.last_serial: np.ndarray | None = None  # buffer serial of each sub-env's previous transition, or -1

    @property
    def actor_arch(self) -> dict:
        c = self.cfg
        return {"kind": "lstm-td3", "obs_dim": self.obs_dim, "act_dim": self.act_dim, "hidden": list(c.hidden),
                "activation": c.activation, "history_len": c.history_len, "mem_hidden": c.mem_hidden,
                "cur_hidden": c.cur_hidden}  # fmt: skip

    def _window(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.window is None or self.window[0].shape[0] != n:
            self.window = empty_history(n, self.cfg.history_len, self.obs_dim, self.act_dim)
            self.last_serial = np.full(n, -1, dtype=np.int64)
        return self.window

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Like :meth:`TD3Agent.act`, the actor reading each sub-env's window of its episode so far."""
        h_obs, h_act, h_len = self._window(obs.shape[0])
        if deterministic:
            with torch.no_grad():
                obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32))
                return self.actor(self._norm(obs_t), self._norm(h_obs), h_act, h_len).numpy()
        if self.steps_seen < self.cfg.learning_starts:
            return self.rng.uniform(-1.0, 1.0, (obs.shape[0], self.act_dim)).astype(np.float32)
        with torch.no_grad():
            obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32))
            a = self.actor(self._norm(obs_t), self._norm(h_obs), h_act, h_len).numpy()
        noise = self.cfg.expl_noise * self.rng.standard_normal(a.shape)  # (OU noise: plain TD3 only)
        return np.clip(a + noise, -1.0, 1.0).astype(np.float32)

    def observe(self, obs, action, reward, next_obs, terminated, truncated, privileged=None, next_privileged=None):
        n = len(reward)
        h_obs, h_act, h_len = self._window(n)
        assert self.last_serial is not None
        serials = self.buffer.add_linked(obs, action, reward, next_obs, terminated, self.last_serial, privileged,
                                         next_privileged)  # fmt: skip
        if self.priv_norm is not None:
            self.priv_norm.update(next_privileged)
        obs_t, act_t = torch.as_tensor(np.asarray(obs, np.float32)), torch.as_tensor(np.asarray(action, np.float32))
        h_obs, h_act, h_len = push_history(h_obs, h_act, h_len, obs_t, act_t)
        done = torch.as_tensor(np.logical_or(terminated, truncated))
        h_obs[done], h_act[done], h_len[done] = 0.0, 0.0, 0.0  # the next observation starts a new episode
        self.window = (h_obs, h_act, h_len)
        self.last_serial = np.where(done.numpy(), -1, serials)
        self.steps_seen += n
        self.update_debt += self.cfg.updates_per_step * n

    def train_step(self, obs, act, rew, next_obs, term, h_obs, h_act, h_len, priv=None, next_priv=None):  # type: ignore[override]
        """One critic update (and, every ``policy_delay``, one actor + target update) on a raw batch with its
        histories (and raw privileged states when asymmetric); the next state's history is this one advanced by
        (obs, act)."""
        cfg = self.cfg
        n_obs, n_obs2 = self._norm(obs), self._norm(next_obs)
        c_obs, c_obs2 = self.critic_input(n_obs, priv), self.critic_input(n_obs2, next_priv)
        n_hist = self._norm(h_obs)
        nh_obs, nh_act, nh_len = push_history(h_obs, h_act, h_len, obs, act)
        n_hist2 = self._norm(nh_obs)
        with torch.no_grad():
            next_act = smoothed_target_action(self.actor_target(n_obs2, n_hist2, nh_act, nh_len), cfg.target_noise,
                                              cfg.noise_clip, self.gen)  # fmt: skip
            next_qs = [c(c_obs2, next_act, n_hist2, nh_act, nh_len) for c in self.critics_target]
            target = td3_target(rew, term, next_qs[0], next_qs[1] if len(next_qs) > 1 else None, cfg.gamma)
        qs = [c(c_obs, act, n_hist, h_act, h_len) for c in self.critics]
        return self.critic_and_delayed_actor_step(
            qs, target,
            lambda: -self.critics[0](c_obs, self.actor(n_obs, n_hist, h_act, h_len), n_hist, h_act, h_len).mean(),
        )  # fmt: skip


# ------------------------------------------------------------------------------------------------ inference
class RecurrentInferencePolicy(InferencePolicy):
    """Raw observation + the policy's state → (action in [-1, 1], next state): frozen normalizer + LSTM actor.

    The state is the window of raw observations and actions (``hist_obs [B, K, obs_dim]``, ``hist_act
    [B, K, act_dim]``, ``hist_len [B]``); :meth:`initial_state` is the empty window an episode starts from.
    ``forward`` is ONNX-exportable; ``__call__`` with the observation alone is refused (a stateful policy needs
    its state)."""

    STATE_NAMES = ("hist_obs", "hist_act", "hist_len")

    def __init__(self, actor: LSTMActor, obs_mean, obs_var, clip: float, eps: float, meta: dict, std_floor=None):
        super().__init__(actor, obs_mean, obs_var, clip, eps, meta, std_floor)
        self.history_len = int(meta["actor_arch"]["history_len"])

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        return empty_history(batch, self.history_len, self.obs_dim, self.act_dim)

    def state_shapes(self) -> dict[str, list[int]]:
        """Per-row shapes of the state tensors (without the batch dimension)."""
        return {"hist_obs": [self.history_len, self.obs_dim], "hist_act": [self.history_len, self.act_dim],
                "hist_len": []}  # fmt: skip

    def _n(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.obs_mean) / self.obs_std).clamp(-self.clip, self.clip)

    def forward(self, obs: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        if len(state) != 3:
            raise TypeError("a recurrent policy takes (obs, hist_obs, hist_act, hist_len); see initial_state()")
        h_obs, h_act, h_len = state
        action = self.actor(self._n(obs), self._n(h_obs), h_act, h_len).clamp(-1.0, 1.0)
        return (action, *push_history(h_obs, h_act, h_len, obs, action))


def recurrent_policy_from_checkpoint(ckpt: dict) -> RecurrentInferencePolicy:
    actor = build_lstm_actor(ckpt["actor_arch"])
    actor.load_state_dict(ckpt["actor"])
    norm = ckpt["normalizer"]
    policy = RecurrentInferencePolicy(actor, norm["mean"], norm["var"], norm["clip"], norm["eps"], ckpt,
                                      norm.get("std_floor"))  # the floor the agent normalized with  # fmt: skip
    for p in policy.parameters():
        p.requires_grad_(False)
    return policy
