"""Deterministic evaluation of an :class:`~policies.checkpoint.InferencePolicy` on its env (optionally on a
given physical plant), with the per-task metrics: return, and the mean of every metric the env reports in
``info["metrics"]`` (success rate, the biped's distance, ...) plus the number of episodes that ended in the task's
failure (falls)."""

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
from sim.task import task_of_env


@dataclass
class EvalResult:
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)  # info["metrics"] key → one value per episode
    fell: list[bool] = field(default_factory=list)  # ended in the task's failure; empty for tasks without one

    def summary(self) -> dict[str, float]:
        """Mean/std return, mean length, the mean of every metric the env reported (``success`` as
        ``success_rate``) and the number of failures (``falls``) for a task that can fail."""
        out = {"episodes": float(len(self.returns)), "return_mean": float(np.mean(self.returns)),
               "return_std": float(np.std(self.returns)), "length_mean": float(np.mean(self.lengths))}  # fmt: skip
        for k, values in self.metrics.items():
            out["success_rate" if k == "success" else k] = float(np.mean(values))
        if self.fell:
            out["falls"] = float(np.sum(self.fell))
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
    for k, v in ep.metrics.items():
        result.metrics.setdefault(k, []).append(v)
    task = task_of_env(env.spec.id) if env.spec is not None else None
    if task is not None and task.failure is not None:
        result.fell.append(ep.fell)
