"""What counts as a successful episode, for every evaluation, ADR and ``s2r stress`` (no gymnasium here).

* biped: walked at least ``sim.biped.SUCCESS_DISTANCE_M`` (15 m) of the course without a fall;
* knob: the knob reached its target (``info["is_success"]``: held within 0.1 rad for 10 steps);
* any other env: ``info["is_success"]``.
"""

from __future__ import annotations

from collections.abc import Mapping

from sim.errors import UserError

SUCCESS_DISTANCE_M = 15.0  # = sim.biped.SUCCESS_DISTANCE_M (checked by a test; sim.biped imports pybullet)


def robot_of_env(env_id: str) -> str | None:
    """``biped`` / ``knob`` for s2r envs (short name or Gymnasium id), ``None`` for any other env."""
    import sim

    for short, (gym_id, *_rest) in sim.ENV_IDS.items():
        if env_id in (short, gym_id):
            return short.split("-")[0]
    return None


def task_success(robot: str | None, info: Mapping) -> bool:
    """Whether an episode (so far) is a success, from its last info dict (see the module docstring)."""
    if robot == "biped":
        return float(info.get("distance_m", 0.0)) >= SUCCESS_DISTANCE_M and not info.get("fell", False)
    return bool(info.get("is_success", False))


def episode_performance(env_id: str, episode_return: float, final_info: Mapping, kind: str = "success") -> float:
    """The per-episode performance ADR thresholds apply to.

    ``kind="success"`` (the default of every s2r robot): 1.0 for a successful episode (:func:`task_success`),
    else 0.0, so ADR's thresholds are success rates. ``"distance_m"`` / ``"consecutive_successes"``: that info
    key (older configs); ``"return"``: the episode return. Envs that are not s2r robots always use the return.
    """
    robot = robot_of_env(env_id)
    if robot is None or kind == "return":
        return float(episode_return)
    if kind == "success":
        return float(task_success(robot, final_info))
    if kind not in final_info:
        raise UserError(f"{env_id} episode ended without info['{kind}']; pass the final step's info dict")
    return float(final_info[kind])
