"""PyBullet simulations of s2r's robots, registered as Gymnasium envs by ``import sim``.

Every env id comes from a robot's :class:`sim.task.Task` (``sim/tasks/``); a robot registered later (a new
robot's own module) gets its ids registered the moment its task is.

Only this package imports pybullet, and only inside the env modules: ``sim.spec``, ``sim.robots`` and
``sim.params`` stay importable on a robot's controller with numpy alone. So this ``__init__`` does not import
gymnasium either: ``import sim`` registers the ids at once if gymnasium is already loaded, otherwise the moment
it is (a one-shot import hook), so ``import sim`` followed by ``gym.make("s2r/Biped-v0")`` works in any order.
Without ``import sim``, ``gym.make("sim:s2r/Biped-v0")`` (Gymnasium's ``module:id`` form) does the same.
Gymnasium 1.x no longer loads ``gymnasium.envs`` entry-point plugins, so there is no install-time registration.
"""

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from sim.errors import UserError
from sim.task import Task, env_variants, find_env, on_register, task_of_env


def _register(task: Task) -> None:
    from gymnasium.envs.registration import register, registry

    for v in task.envs:
        if v.gym_id not in registry:
            register(id=v.gym_id, entry_point=v.entry_point, kwargs=dict(v.kwargs), max_episode_steps=v.max_episode_steps)


def register_envs() -> None:
    """Register the env ids of every registered robot (:mod:`sim.task`) with Gymnasium, now and for robots
    registered later (idempotent; imports gymnasium)."""
    global _registering
    if not _registering:
        _registering = True
        on_register(_register)


_registering = False


def resolve_env_id(name: str) -> str:
    """Map a short name (``biped``, ``knob``...) or any Gymnasium id to a registered Gymnasium id."""
    found = find_env(name)
    if found is not None:
        return found[1].gym_id
    from gymnasium.envs.registration import registry

    if name in registry:
        return name
    known = ", ".join(env_variants())
    raise UserError(f"unknown env '{name}'; use one of {known} or a registered Gymnasium id like Pendulum-v1")


def get_expert(name: str, env_id: str) -> Callable:
    """The scripted expert ``name`` of ``env_id``'s robot (:attr:`sim.task.Task.experts`): one raw observation →
    a normalized action in [-1, 1]; UserError naming the choices if there is none."""
    task = task_of_env(env_id)
    if task is None:
        raise UserError(f"no scripted expert '{name}' for env {env_id}: only s2r robots have scripted experts")
    return task.expert(name)


class _RegisterWhenGymnasiumLoads(importlib.abc.MetaPathFinder):
    """One-shot import hook: once ``gymnasium.envs`` has run (Gymnasium's own ids registered), register ours."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname != "gymnasium.envs":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader: Any = spec.loader
        run_module = loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            run_module(module)
            register_envs()

        loader.exec_module = exec_then_register  # this module's own loader instance only
        return spec


if "gymnasium.envs" in sys.modules:
    register_envs()
elif not any(isinstance(f, _RegisterWhenGymnasiumLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenGymnasiumLoads())
