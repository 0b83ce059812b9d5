"""Evaluate a policy on named plants (the held-out "reality gap" suite): plant × return / distance / falls.

The policy is any callable ``obs (obs_dim,) float32 → action (act_dim,) in [-1, 1]``, so this module stays free of
torch (the CLI and the benchmark wrap a checkpoint or an ONNX bundle). Episode k of every plant is reset with the
same seed, so plants differ only in their physics (common random numbers: sharper comparisons for few episodes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

import sim
from domain_rand import episode_performance, robot_of_env
from sim.errors import UserError

Policy = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PlantResult:
    """Mean outcome of ``episodes`` deterministic episodes on one plant."""

    plant: str
    episodes: int
    mean_return: float
    std_return: float
    mean_performance: float  # the task's ADR performance: biped distance (m), knob successes, else return
    fall_rate: float  # fraction of episodes that ended in a fall (biped) / without success (knob)


def run_episode(env: gym.Env, policy: Policy, seed: int, params: Mapping[str, float]) -> tuple[float, dict]:
    """One episode on the given physics; returns (episode return, final info)."""
    obs, info = env.reset(seed=seed, options={"params": dict(params)})
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy(np.asarray(obs, dtype=np.float32)))
        total += float(reward)
        done = terminated or truncated
    return total, info


def evaluate_plants(
    env_id: str, policy: Policy, plants: Mapping[str, Mapping[str, float]], episodes: int = 5, seed: int = 0
) -> list[PlantResult]:
    """Run ``episodes`` episodes per plant (seeds ``seed .. seed+episodes-1``) and summarize each plant."""
    if episodes < 1:
        raise UserError(f"episodes must be >= 1, got {episodes}")
    gym_id = sim.resolve_env_id(env_id)
    robot = robot_of_env(gym_id)
    env = gym.make(gym_id)
    try:
        out = []
        for name, params in plants.items():
            returns, perfs, fails = [], [], []
            for k in range(episodes):
                ret, info = run_episode(env, policy, seed + k, params)
                returns.append(ret)
                perfs.append(episode_performance(gym_id, ret, info))
                fails.append(
                    bool(info.get("fell")) if robot == "biped" else not info.get("is_success", False)
                )
            out.append(
                PlantResult(name, episodes, float(np.mean(returns)), float(np.std(returns)),
                            float(np.mean(perfs)), float(np.mean(fails)))
            )  # fmt: skip
        return out
    finally:
        env.close()


def format_plant_table(results: list[PlantResult], env_id: str) -> str:
    """A Markdown table, one row per plant, plus the held-out mean (all plants except ``nominal``)."""
    robot = robot_of_env(env_id)
    perf_name = {"biped": "distance (m)", "knob": "successes"}.get(robot or "", "return")
    fail_name = "falls" if robot == "biped" else "failures"
    lines = [
        f"| plant | return | {perf_name} | {fail_name} |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {r.plant} | {r.mean_return:.1f} ± {r.std_return:.1f} | {r.mean_performance:.2f} | {r.fall_rate:.0%} |"
            for r in results
        ),
    ]
    held = [r for r in results if r.plant != "nominal"]
    if held:
        lines.append(
            f"| **held-out mean** | {np.mean([r.mean_return for r in held]):.1f} | "
            f"{np.mean([r.mean_performance for r in held]):.2f} | {np.mean([r.fall_rate for r in held]):.0%} |"
        )
    return "\n".join(lines)
