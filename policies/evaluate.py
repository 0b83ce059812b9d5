"""Deterministic evaluation of an :class:`~policies.checkpoint.InferencePolicy` on its env (optionally on a
given physical plant), with the per-task metrics: return, success rate (biped: walked >= 15 m without a fall;
knob: reached the target), distance and falls (biped)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from domain_rand.evaluate import run_episode
from policies.checkpoint import InferencePolicy
from policies.vec_env import make_env
from sim.errors import UserError


@dataclass
class EvalResult:
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    distance_m: list[float] = field(default_factory=list)
    fell: list[bool] = field(default_factory=list)
    success: list[bool] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Mean/std return, mean length, and the task metrics that the env reported."""
        out = {"episodes": float(len(self.returns)), "return_mean": float(np.mean(self.returns)),
               "return_std": float(np.std(self.returns)), "length_mean": float(np.mean(self.lengths))}  # fmt: skip
        if self.distance_m:
            out["distance_m"] = float(np.mean(self.distance_m))
        if self.fell:
            out["falls"] = float(np.sum(self.fell))
        if self.success:
            out["success_rate"] = float(np.mean(self.success))
        return out


def policy_initial_state(policy: InferencePolicy) -> tuple[torch.Tensor, ...]:
    """The state a policy starts an episode from: empty for a feed-forward policy, its memory's initial state
    for a recurrent one (``initial_state()``)."""
    init = getattr(policy, "initial_state", None)
    return tuple(init(1)) if init is not None else ()


def policy_step(
    policy: InferencePolicy, obs: np.ndarray, state: tuple[torch.Tensor, ...]
) -> tuple[np.ndarray, tuple[torch.Tensor, ...]]:
    """One deterministic action for one raw observation, and the policy's next state."""
    with torch.no_grad():
        out = policy(torch.as_tensor(np.asarray(obs), dtype=torch.float32)[None], *state)
    if isinstance(out, tuple):
        return out[0][0].numpy(), tuple(out[1:])
    return out[0].numpy(), state


def evaluate(
    policy: InferencePolicy,
    episodes: int = 10,
    seed: int = 10_000,
    params: dict[str, float] | None = None,
    gif: str | Path | None = None,
    gif_every: int = 2,
    on_episode: Callable[[EvalResult], None] | None = None,
    engine: str = "pybullet",
) -> EvalResult:
    """Run ``episodes`` deterministic episodes (seeds ``seed, seed+1...``; the first is recorded to ``gif``, a
    .gif or .mp4) in the physics ``engine`` (``sim.engines``); ``on_episode(result so far)`` is called after
    each one (a progress bar).

    The episode loop, success and falls are :func:`domain_rand.evaluate.run_episode`'s, shared with the held-out
    table and ``s2r stress``.
    """
    if episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {episodes}")
    if gif:
        from sim.video import check_video_path

        check_video_path(gif)  # before the episodes, not after them
    from sim.engines import env_kwargs

    env = make_env(policy.env_id, **({"render_mode": "rgb_array"} if gif else {}), **env_kwargs(policy.env_id, engine))
    result = EvalResult()
    frames: list[np.ndarray] = []  # RGB arrays of the first episode
    try:
        for k in range(episodes):
            run_policy_episode(env, policy, seed + k, params, result, frames if gif and k == 0 else None, gif_every)
            if on_episode is not None:
                on_episode(result)
    finally:
        env.close()
    if gif:
        from sim.video import write_video

        write_video(frames, gif, fps=50.0 / gif_every)
    return result


def run_policy_episode(
    env: Any,
    policy: InferencePolicy,
    seed: int,
    params: dict[str, float] | None,
    result: EvalResult,
    frames: list[np.ndarray] | None = None,
    frame_every: int = 2,
    max_steps: int | None = None,
) -> None:
    """One deterministic episode (:func:`domain_rand.evaluate.run_episode`), its outcome appended to ``result``;
    every ``frame_every``-th step rendered into ``frames`` if given; cut after ``max_steps`` (a video) if given."""

    state = policy_initial_state(policy)  # a policy with memory starts every episode from its initial state

    def act(obs: np.ndarray) -> np.ndarray:
        nonlocal state
        action, state = policy_step(policy, obs, state)
        return action

    def frame(step: int) -> None:
        if frames is not None and step % frame_every == 0:
            frames.append(np.asarray(env.render()))

    ep = run_episode(env, act, seed, params, on_step=frame if frames is not None else None, max_steps=max_steps)
    result.returns.append(ep.ret)
    result.lengths.append(ep.length)
    if ep.distance_m is not None:
        result.distance_m.append(ep.distance_m)
    if "fell" in ep.info:
        result.fell.append(ep.fell)
    if "is_success" in ep.info or ep.distance_m is not None:
        result.success.append(ep.success)
