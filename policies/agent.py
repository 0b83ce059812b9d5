"""The contract between a learner and :class:`policies.runner.Runner`, which owns the training loop.

A learner (PPO, TD3/DDPG, LSTM-TD3, or one of them behind the DAgger warm start of ``policies.imitation``) is
an :class:`Agent`: it acts on a batch of raw observations, stores the step's outcome, says when it wants a
gradient update and returns its losses as a dict of named scalars, which the runner logs without knowing them
(rsl_rl's ``update() -> dict``). How it learns — rollouts or a replay buffer, warm-up phases — stays behind this
interface: the runner never asks an agent's type. :func:`make_agent` builds the agent a config names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from torch import nn

if TYPE_CHECKING:
    from policies.imitation import Expert
    from policies.normalizer import ObsNormalizer
    from policies.ppo import PPOConfig
    from policies.td3 import TD3Config

# the training phases an agent can be in (``Agent.phase``): what the progress line says, and whose episodes its
# numbers are. ``learn`` is the algorithm's own learning (progress.csv's ``phase`` column writes the algo's name)
PHASES = {
    "random": "warm-up: random actions fill the replay buffer (the numbers are the random policy's)",
    "expert": "imitation warm-up: the scripted expert acts, the policy learns its actions by DAgger "
    "(the numbers are the expert's)",
    "dagger": "imitation: the policy acts (deterministic) on its own, DAgger refits it to the expert's actions",
    "dagger-fit": "imitation: final DAgger fit of the policy to the expert's actions (no env steps meanwhile)",
    "learn": "the policy acts and learns by {algo} (the numbers are the policy's, with exploration)",
}


class Replay(Protocol):
    """Experience kept across updates (a replay buffer): saved beside the checkpoint, in its own file."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class Agent(Protocol):
    """A learner as the runner sees it. Observations are raw (the agent normalizes them with the normalizer it
    shares with the runner, which updates its statistics); actions are normalized, in [-1, 1]."""

    @property
    def actor(self) -> nn.Module:
        """The network that acts (saved as the checkpoint's ``actor``, rebuilt from :attr:`actor_arch`)."""
        ...

    @property
    def actor_arch(self) -> dict: ...

    @property
    def phase(self) -> str:
        """The training phase, a key of :data:`PHASES` (a change clears the rolling episode window)."""
        ...

    @property
    def update_due(self) -> bool:
        """Whether :meth:`update` would train now (the runner gives it its update threads then)."""
        ...

    @property
    def at_boundary(self) -> bool:
        """Whether a checkpoint or an evaluation now loses no collected experience (PPO: between rollouts)."""
        ...

    @property
    def log_every(self) -> int:
        """Env steps between progress.csv rows unless the run says otherwise (PPO: one rollout)."""
        ...

    @property
    def replay(self) -> Replay | None:
        """The replay buffer saved beside the checkpoint (``replay.pt``), or None for an on-policy learner."""
        ...

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Actions ``(N, act_dim)`` in [-1, 1] for raw observations ``(N, obs_dim)``: exploring (and recorded
        for the update), or with ``deterministic`` the policy's own action (nothing recorded)."""
        ...

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                terminated: np.ndarray, truncated: np.ndarray) -> None:  # fmt: skip
        """Store the outcome of the last :meth:`act` (``next_obs``: the final observation where an episode
        ended; ``terminated`` and ``truncated`` apart, so a time limit still bootstraps). An agent whose config
        has ``privileged_critic`` also takes ``privileged=`` and ``next_privileged=``: the ``info["privileged"]``
        arrays ``(N, dim)`` of both (the runner passes them; the critic reads them, the actor never does). An
        agent with memory of the episodes in progress may offer ``reset_memory()``: the runner calls it when it
        starts every sub-env afresh (a resumed run)."""
        ...

    def update(self) -> dict[str, float] | None:
        """Train if due; the losses and metrics of the update (named, ``/``-namespaced), or None."""
        ...

    def forget_replay(self) -> None:
        """The saved replay buffer could not be read: refill it (run the warm-up again) before learning."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def make_agent(algo_cfg: PPOConfig | TD3Config, obs_dim: int, act_dim: int, norm: ObsNormalizer, num_envs: int,
               total_steps: int, seed: int = 0, expert: Expert | None = None,
               obs_names: Sequence[str] | None = None, privileged_floor: np.ndarray | None = None) -> Agent:  # fmt: skip
    """The learner ``algo_cfg`` configures; a PPO config that names an expert gets the imitation plug-ins (the
    BC term in its loss, the DAgger warm start around it). ``obs_names``: the env's observation field names,
    which (recurrent) PPO's ``actor_ignores`` may name. ``privileged_floor``: the per-field resolutions of the env's
    privileged layout (None: the env has none), for a config with ``privileged_critic``."""
    from policies.imitation import BCTerm, DAggerWarmStart
    from policies.lstm_td3 import LSTMTD3Agent, LSTMTD3Config
    from policies.ppo import PPOAgent, PPOConfig
    from policies.recurrent_ppo import RecurrentPPOAgent, RecurrentPPOConfig
    from policies.smoothness import BoundTerm, SmoothnessTerm

    floor = privileged_floor
    if isinstance(algo_cfg, RecurrentPPOConfig):
        return RecurrentPPOAgent(algo_cfg, obs_dim, act_dim, norm, num_envs, total_steps, seed, floor, obs_names)
    if isinstance(algo_cfg, LSTMTD3Config):
        return LSTMTD3Agent(algo_cfg, obs_dim, act_dim, norm, seed=seed, privileged_floor=floor)
    if not isinstance(algo_cfg, PPOConfig):
        from policies.td3 import TD3Agent

        return TD3Agent(algo_cfg, obs_dim, act_dim, norm, seed=seed, privileged_floor=floor)
    if (algo_cfg.expert is None) != (expert is None):
        raise ValueError(f"config names expert {algo_cfg.expert!r} but the agent got {'one' if expert else 'none'}")
    terms: list = []
    smooth = None
    if algo_cfg.caps_temporal > 0 or algo_cfg.caps_spatial > 0:
        smooth = SmoothnessTerm(norm, algo_cfg.caps_temporal, algo_cfg.caps_spatial, algo_cfg.caps_sigma,
                                algo_cfg.n_steps, num_envs, obs_dim)  # fmt: skip
        terms.append(smooth)
    if algo_cfg.bound_coef > 0:
        terms.append(BoundTerm(algo_cfg.bound_coef, algo_cfg.n_steps, num_envs))
    if expert is not None and algo_cfg.bc_coef > 0:
        terms.append(BCTerm(expert, algo_cfg.bc_coef, algo_cfg.n_steps, num_envs, act_dim))
    ppo = PPOAgent(algo_cfg, obs_dim, act_dim, norm, num_envs, total_steps, seed=seed, extra_losses=terms,
                   obs_names=obs_names, privileged_floor=floor)  # fmt: skip
    if smooth is not None:  # its spatial noise from the agent's checkpointed generator: resume stays exact
        smooth.gen = ppo.gen
    if expert is None or algo_cfg.imitation_steps == 0:
        return ppo
    return DAggerWarmStart(ppo, expert, algo_cfg, num_envs)
