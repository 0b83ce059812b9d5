"""Held-out plants: the fixed stand-ins for reality, never sampled in training.

Each plant is a named set of physical-parameter overrides (the env keeps every other parameter nominal), passed
as ``env.reset(options={"params": plant})``. ``s2r eval --plants heldout`` and the firmware emulator's
``--plant NAME`` both read the robot's one table, :attr:`sim.task.Task.plants` (``sim/tasks/<robot>.py``), so
"the robot with weak motors" means the same thing everywhere. Its values sit outside the fixed-DR presets on
purpose. The reality box (:attr:`sim.task.Task.reality_box`, drawn by ``s2r stress``) stands for an uncalibrated
real robot instead: moderate ranges, every parameter at once.
"""

from __future__ import annotations

from sim.errors import UserError
from sim.task import get_task


def get_plants(robot_id: str, suite: str = "heldout") -> dict[str, dict[str, float]]:
    """The named plants of a suite, ``{plant: {param: value}}`` (``nominal`` first). Copies: safe to mutate.

    ``suite="nominal"`` is just the nominal plant. Unknown robot or suite → UserError listing the choices.
    """
    return get_task(robot_id).plant_suite(suite)


def get_plant(robot_id: str, name: str) -> dict[str, float]:
    """One named plant from any suite of a robot (e.g. the emulator's ``--plant weak_motors``)."""
    task = get_task(robot_id)
    known = {n: v for suite in task.plants for n, v in task.plant_suite(suite).items()}
    if name not in known:
        raise UserError(f"unknown plant '{name}' for {robot_id}; plants: {', '.join(known)}")
    return known[name]
