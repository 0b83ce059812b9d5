"""PyBullet simulations of s2r's robots, registered as Gymnasium envs on import.

Only this package imports pybullet, and only inside the env modules: ``sim.spec``, ``sim.robots`` and
``sim.params`` stay importable on a robot's controller without pybullet installed.
"""

import importlib
from collections.abc import Callable

from gymnasium.envs.registration import register, registry

from sim.errors import UserError

ENV_IDS = {
    # short name used by the CLI → (Gymnasium id, entry point, kwargs, max episode steps)
    "biped": ("s2r/Biped-v0", "sim.biped:BipedEnv", {"terrain": "flat"}, 1600),
    "biped-rough": ("s2r/BipedRough-v0", "sim.biped:BipedEnv", {"terrain": "rough"}, 1600),
    "biped-hardcore": ("s2r/BipedHardcore-v0", "sim.biped:BipedEnv", {"terrain": "obstacles"}, 1600),
    "knob": ("s2r/Knob-v0", "sim.knob:KnobEnv", {}, 400),
}


def _register() -> None:
    for env_id, entry_point, kwargs, steps in ENV_IDS.values():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, kwargs=kwargs, max_episode_steps=steps)


def resolve_env_id(name: str) -> str:
    """Map a short name (``biped``, ``knob``...) or any Gymnasium id to a registered Gymnasium id."""
    if name in ENV_IDS:
        return ENV_IDS[name][0]
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


_register()
