"""Run episodes of an env with a simple built-in policy (random or zero torque) and summarise them."""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

import sim
from sim.engines import DEFAULT_ENGINE, env_kwargs
from sim.errors import UserError
from sim.video import check_video_path, write_video


@dataclass
class EpisodeStats:
    ret: float
    length: int
    metrics: dict[str, float]  # the last step's info["metrics"] (sim.task); any other env: its is_success, if set


@dataclass
class RolloutReport:
    env_id: str
    policy: str
    episodes: list[EpisodeStats] = field(default_factory=list)

    def table(self) -> str:
        """A human-readable report: one row per episode and a mean ± std line."""
        keys = list(dict.fromkeys(k for e in self.episodes for k in e.metrics))  # every metric reported, in order
        width = [max(7, len(k)) for k in keys]
        rows = [f"{self.env_id} — {self.policy} policy, {len(self.episodes)} episode(s)",
                f"{'ep':>3} {'return':>9} {'steps':>6} " + " ".join(f"{k:>{w}}" for k, w in zip(keys, width, strict=True))]
        for i, e in enumerate(self.episodes):
            cells = ("-" if k not in e.metrics else f"{e.metrics[k]:.2f}" for k in keys)
            rows.append(f"{i:>3} {e.ret:>9.2f} {e.length:>6} " + " ".join(f"{c:>{w}}" for c, w in zip(cells, width, strict=True)))
        rets = np.array([e.ret for e in self.episodes])
        rows.append(f"mean return {rets.mean():.2f} ± {rets.std():.2f}")
        return "\n".join(rows)


def rollout_report(env_name: str, episodes: int = 3, policy: str = "random", seed: int = 0,
                   params: dict[str, float] | None = None, max_steps: int | None = None,
                   gif_path: str | None = None, engine: str = DEFAULT_ENGINE) -> RolloutReport:
    """Run ``episodes`` episodes with a random or zero policy in physics ``engine``; render the first one to
    ``gif_path`` (a .gif or an .mp4) if given."""
    env_id = sim.resolve_env_id(env_name)
    if gif_path:
        check_video_path(gif_path)  # .gif or .mp4 (with imageio-ffmpeg): before the episodes, not after
    env = gym.make(env_id, render_mode="rgb_array" if gif_path else None, **env_kwargs(env_id, engine))
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise UserError(f"{env_id} has a {type(space).__name__} action space; rollout needs a Box")
    report = RolloutReport(env_id if engine == DEFAULT_ENGINE else f"{env_id} ({engine})", policy)
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    frames: list[np.ndarray] = []
    try:
        for ep in range(episodes):
            options = {"params": params} if params else None
            obs, info = env.reset(seed=seed + ep, options=options)
            ret, steps, done = 0.0, 0, False
            info = {}
            while not done and (max_steps is None or steps < max_steps):
                if policy == "random":
                    action = rng.uniform(space.low, space.high).astype(np.float32)
                else:
                    action = np.zeros(space.shape, dtype=np.float32)
                obs, reward, terminated, truncated, info = env.step(action)
                ret += float(reward)
                steps += 1
                done = terminated or truncated
                if gif_path and ep == 0 and steps % 2 == 0:  # 25 fps GIF of a 50 Hz episode
                    frames.append(np.asarray(env.render()))
            metrics = info.get("metrics", {"success": info["is_success"]} if "is_success" in info else {})
            report.episodes.append(EpisodeStats(ret, steps, {k: float(v) for k, v in metrics.items()}))
    finally:
        env.close()
    if gif_path:
        write_video(frames, gif_path, fps=25.0)
    return report
