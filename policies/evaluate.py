"""Deterministic evaluation of an :class:`~policies.checkpoint.InferencePolicy` on its env (optionally on a
given physical plant), with the per-task metrics: return, success rate (knob), distance and falls (biped)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

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
) -> EvalResult:
    """Run ``episodes`` deterministic episodes (seeds ``seed, seed+1...``; the first is recorded to ``gif``)."""
    if episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {episodes}")
    env = make_env(policy.env_id, **({"render_mode": "rgb_array"} if gif else {}))
    result, frames = EvalResult(), []  # frames: RGB arrays of the first episode
    try:
        for k in range(episodes):
            obs, info = env.reset(seed=seed + k, options={"params": params} if params else None)
            ep_ret, length, done = 0.0, 0, False
            state = policy_initial_state(policy)
            while not done:
                action, state = policy_step(policy, obs, state)
                obs, reward, terminated, truncated, info = env.step(action)
                ep_ret, length, done = ep_ret + float(reward), length + 1, terminated or truncated
                if gif and k == 0 and length % gif_every == 0:
                    frames.append(np.asarray(env.render()))
            result.returns.append(ep_ret)
            result.lengths.append(length)
            if "distance_m" in info:
                result.distance_m.append(float(info["distance_m"]))
            if "fell" in info:
                result.fell.append(bool(info["fell"]))
            if "is_success" in info:
                result.success.append(bool(info["is_success"]))
    finally:
        env.close()
    if gif:
        from sim.video import write_gif

        write_gif(frames, gif, fps=50.0 / gif_every)
    return result
