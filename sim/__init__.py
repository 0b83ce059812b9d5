"""PyBullet simulations of s2r's robots, registered as Gymnasium envs by ``import sim``.

Only this package imports pybullet, and only inside the env modules: ``sim.spec``, ``sim.robots`` and
``sim.params`` stay importable on a robot's controller with numpy alone. So this ``__init__`` does not import
gymnasium either: ``import sim`` registers the ids at once if gymnasium is already loaded, otherwise the moment
it is (a one-shot import hook), so ``import sim`` followed by ``gym.make("s2r/Biped-v0")`` works in any order.
Without ``import sim``, ``gym.make("sim:s2r/Biped-v0")`` (Gymnasium's ``module:id`` form) does the same.
Gymnasium 1.x no longer loads ``gymnasium.envs`` entry-point plugins, so there is no install-time registration.
"""

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from sim.errors import UserError

ENV_IDS = {
    # short name used by the CLI → (Gymnasium id, entry point, kwargs, max episode steps)
    "biped": ("s2r/Biped-v0", "sim.biped:BipedEnv", {"terrain": "flat"}, 1600),
    "biped-rough": ("s2r/BipedRough-v0", "sim.biped:BipedEnv", {"terrain": "rough"}, 1600),
    "biped-hardcore": ("s2r/BipedHardcore-v0", "sim.biped:BipedEnv", {"terrain": "obstacles"}, 1600),
    "knob": ("s2r/Knob-v0", "sim.knob:KnobEnv", {}, 400),
}


def register_envs() -> None:
    """Register every id of ``ENV_IDS`` with Gymnasium (idempotent; imports gymnasium)."""
    from gymnasium.envs.registration import register, registry

    for env_id, entry_point, kwargs, steps in ENV_IDS.values():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, kwargs=kwargs, max_episode_steps=steps)


def resolve_env_id(name: str) -> str:
    """Map a short name (``biped``, ``knob``...) or any Gymnasium id to a registered Gymnasium id."""
    if name in ENV_IDS:
        return ENV_IDS[name][0]
    from gymnasium.envs.registration import registry

    if name in registry:
        return name
    known = ", ".join(ENV_IDS)
    raise UserError(f"unknown env '{name}'; use one of {known} or a registered Gymnasium id like Pendulum-v1")


# scripted experts that `s2r train` can learn from (PPOConfig.expert): name → (env id, "module:function"); the
# function maps one raw observation to a normalized action in [-1, 1]
EXPERTS = {
    "knob_gait": ("s2r/Knob-v0", "sim.knob_gait:gait_action"),
}


def get_expert(name: str, env_id: str) -> Callable:
    """The scripted expert ``name`` for ``env_id``; ValueError naming the choices if there is none."""
    if name not in EXPERTS or EXPERTS[name][0] != resolve_env_id(env_id):
        choices = [f"{n} ({e})" for n, (e, _) in EXPERTS.items()]
        raise UserError(f"no scripted expert '{name}' for env {env_id}; experts: {', '.join(choices)}")
    module, func = EXPERTS[name][1].split(":")
    return getattr(importlib.import_module(module), func)


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
