"""What an episode scored, for every evaluation, ADR, training log and ``s2r stress`` (no gymnasium here).

An s2r env reports its task's metrics in every step's ``info["metrics"]`` (the contract of :mod:`sim.task`):
``"success"`` always (biped: walked 15 m without a fall; knob: reached its target), the task's failure key
(the biped's ``"fell"``) and whatever else the task measures (``"distance_m"``, ``"consecutive_successes"``).
Consumers average these keys without knowing them. Any other Gymnasium env: ``info["is_success"]`` (Gymnasium's
convention) becomes ``"success"`` when the env sets it.
"""

from __future__ import annotations

from collections.abc import Mapping

from sim.errors import UserError
from sim.task import Task, task_of_env


def robot_of_env(env_id: str) -> str | None:
    """The robot of an s2r env (short name or Gymnasium id: ``biped``, ``knob``...), ``None`` for any other env."""
    task = task_of_env(env_id)
    return None if task is None else task.name


def episode_metrics(info: Mapping) -> dict[str, float]:
    """The metrics of a step's info dict (see the module docstring), as floats."""
    metrics = info.get("metrics")
    if metrics is not None:
        return {k: float(v) for k, v in metrics.items()}
    return {"success": float(bool(info["is_success"]))} if "is_success" in info else {}


def task_success(info: Mapping) -> bool:
    """Whether an episode (so far) is a success, from its last info dict."""
    return bool(episode_metrics(info).get("success", 0.0))


def task_failed(task: Task | None, info: Mapping) -> bool:
    """Whether the episode ended in the task's failure (a fall); False for tasks without one."""
    if task is None or task.failure is None:
        return False
    return bool(episode_metrics(info).get(task.failure, 0.0))


def episode_performance(env_id: str, episode_return: float, final_info: Mapping, kind: str = "success") -> float:
    """The per-episode performance ADR thresholds apply to: the metric ``kind`` of the final info dict
    (``"success"``, the default of every s2r robot: 1.0 or 0.0, so ADR's thresholds are success rates; or another
    metric of the task such as ``"distance_m"``), or ``"return"``: the episode return. Envs that are not s2r robots
    always use the return."""
    if task_of_env(env_id) is None or kind == "return":
        return float(episode_return)
    metrics = episode_metrics(final_info)
    if kind not in metrics:
        raise UserError(f"{env_id} episode ended without info['metrics']['{kind}']; pass the final step's info dict")
    return metrics[kind]
