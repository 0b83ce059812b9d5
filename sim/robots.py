"""The robots' specs by name: observation layouts, motors and torque limits, sensor layouts, control rates.

Pure numpy: imported by the simulator, the exporter, the controller runtime and the firmware emulator alike.
Each spec is defined with its robot's :class:`sim.task.Task` (``sim/tasks/<robot>.py``); this module looks them
up in the one registry, so a robot registered elsewhere (a new robot's module) is found here too.
"""

from __future__ import annotations

from sim.spec import RobotSpec
from sim.task import get_task, tasks
from sim.tasks.biped import BIPED_OBS_FIELDS, BIPED_SPEC
from sim.tasks.knob import KNOB_OBS_FIELDS, KNOB_SPEC, wrap_angle

__all__ = ["BIPED_OBS_FIELDS", "BIPED_SPEC", "KNOB_OBS_FIELDS", "KNOB_SPEC", "get_robot", "robots", "wrap_angle"]


def get_robot(robot_id: str) -> RobotSpec:
    """The spec of robot ``robot_id`` (``biped``, ``knob`` or any registered robot); UserError naming the known
    robots otherwise."""
    return get_task(robot_id).spec


def robots() -> dict[str, RobotSpec]:
    """Every registered robot's spec, by name."""
    return {name: task.spec for name, task in tasks().items()}
