"""The one episode loop and the one definition of success and falls, for every evaluation in s2r.

``s2r eval`` (``policies/evaluate.py``), the held-out table (:func:`evaluate_plants`), ``s2r stress``
(:mod:`domain_rand.stress`), ADR's performance signal and the transfer benchmark all score episodes here:

* **metrics**: the env's ``info["metrics"]`` at the last step (:mod:`sim.task`'s contract), averaged key by key;
* **success**: ``metrics["success"]`` (biped — walked 15 m of the course without a fall; knob — the knob reached
  its target, held 10 steps; any other env — ``info["is_success"]``), the task's own
  :attr:`~sim.task.Task.success_text`;
* **fall**: the task's failure metric (:attr:`sim.task.Task.failure`: the biped's ``"fell"``); a task without
  one (the knob) never fails that way.

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
from domain_rand.success import episode_metrics, task_failed, task_success
from sim.errors import UserError
from sim.task import task_of_env

Policy = Callable[[np.ndarray], np.ndarray]


@dataclass
class Episode:
    """One finished episode. The arrays are filled only with ``record=True`` (one row per control step)."""

    ret: float
    length: int
    success: bool
    fell: bool  # ended in the task's failure (a fall)
    metrics: dict[str, float]  # the last step's info["metrics"] (domain_rand.success.episode_metrics)
    info: dict  # the last step's info
    action: np.ndarray | None = None  # (T, n) normalized actions in [-1, 1] as applied (clipped)
    applied_torque_nm: np.ndarray | None = None  # (T, n) joint torque in the last substep of each step
    obs: np.ndarray | None = None  # (T + 1, obs_dim) observations, the reset's first


def run_episode(
    env: gym.Env,
    policy: Policy,
    seed: int | None,
    params: Mapping[str, float] | None = None,
    *,
    stop_at_success: bool = False,
    record: bool = False,
    on_step: Callable[[int], None] | None = None,
    max_steps: int | None = None,
) -> Episode:
    """One deterministic episode on the given physics.

    ``stop_at_success``: end the episode the step it becomes a success (the biped at 15 m): the outcome cannot
    change after that, so sweeps save the rest of the course. ``on_step(step)`` runs after every step (frames for
    a GIF). ``max_steps``: cut the episode there (a video). The episode otherwise ends on ``terminated`` or
    ``truncated`` (the env's TimeLimit).
    """
    task = task_of_env(env.spec.id) if env.spec is not None else None
    reset_state = getattr(policy, "reset_state", None)
    if reset_state is not None:  # a policy with state (memory, action filter) starts every episode afresh
        reset_state()
    obs, info = env.reset(seed=seed, options={"params": dict(params)} if params else None)
    total, length, done = 0.0, 0, False
    actions, torques, observations = [], [], [np.asarray(obs, dtype=np.float32)]
    while not done:
        action = np.clip(np.asarray(policy(np.asarray(obs, dtype=np.float32)), dtype=np.float32), -1.0, 1.0)
        obs, reward, terminated, truncated, info = env.step(action)
        total, length = total + float(reward), length + 1
        done = terminated or truncated or (stop_at_success and task_success(info))
        done = done or (max_steps is not None and length >= max_steps)
        if record:
            actions.append(action)
            torques.append(np.asarray(info.get("applied_torque_nm", np.zeros_like(action)), dtype=np.float32))
            observations.append(np.asarray(obs, dtype=np.float32))
        if on_step is not None:
            on_step(length)
    return Episode(
        ret=total,
        length=length,
        success=task_success(info),
        fell=task_failed(task, info),
        metrics=episode_metrics(info),
        info=info,
        action=np.array(actions) if record else None,
        applied_torque_nm=np.array(torques) if record else None,
        obs=np.array(observations) if record else None,
    )


@dataclass(frozen=True)
class PlantResult:
    """Mean outcome of ``episodes`` deterministic episodes on one plant."""

    plant: str
    episodes: int
    mean_return: float
    std_return: float
    mean_performance: float  # mean of the task's performance metric (Task.performance: the biped's distance
    # walked in m, the knob's success); the return for other envs
    success_rate: float  # mean of metrics["success"] (biped: >= 15 m without a fall; knob: target reached)
    fall_rate: float  # fraction of episodes that ended in the task's failure (the knob never falls)
    metrics: dict[str, float]  # the mean of every metric the env reported


def evaluate_plants(
    env_id: str, policy: Policy, plants: Mapping[str, Mapping[str, float]], episodes: int = 5, seed: int = 0
) -> list[PlantResult]:
    """Run ``episodes`` episodes per plant (seeds ``seed .. seed+episodes-1``) and summarize each plant."""
    if episodes < 1:
        raise UserError(f"episodes must be >= 1, got {episodes}")
    gym_id = sim.resolve_env_id(env_id)
    task = task_of_env(gym_id)
    env = gym.make(gym_id)
    try:
        out = []
        for name, params in plants.items():
            eps = [run_episode(env, policy, seed + k, params) for k in range(episodes)]
            returns = [e.ret for e in eps]
            metrics = {k: float(np.mean([e.metrics.get(k, np.nan) for e in eps])) for k in eps[0].metrics}
            perf = metrics.get(task.performance, np.nan) if task is not None else float(np.mean(returns))
            out.append(
                PlantResult(name, episodes, float(np.mean(returns)), float(np.std(returns)), perf,
                            float(np.mean([e.success for e in eps])), float(np.mean([e.fell for e in eps])), metrics)
            )  # fmt: skip
        return out
    finally:
        env.close()


def format_plant_table(results: list[PlantResult], env_id: str) -> str:
    """A Markdown table, one row per plant, plus the held-out mean (all plants except ``nominal``)."""
    task = task_of_env(env_id)
    perf_name = task.performance if task is not None and task.performance != "success" else "performance"
    lines = [
        f"| plant | return | {perf_name} | success | falls |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {r.plant} | {r.mean_return:.1f} ± {r.std_return:.1f} | {r.mean_performance:.2f} | "
            f"{r.success_rate:.0%} | {r.fall_rate:.0%} |"
            for r in results
        ),
    ]
    held = [r for r in results if r.plant != "nominal"]
    if held:
        lines.append(
            f"| **held-out mean** | {np.mean([r.mean_return for r in held]):.1f} | "
            f"{np.mean([r.mean_performance for r in held]):.2f} | {np.mean([r.success_rate for r in held]):.0%} | "
            f"{np.mean([r.fall_rate for r in held]):.0%} |"
        )
    return "\n".join(lines)
