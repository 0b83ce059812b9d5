"""The physics engines s2r's robots run in, and the one check every entry point (env kwarg, CLI flag) uses.

Each robot keeps its engine-independent half (motor model loop, observation, reward, termination, info) in
``sim/<robot>.py`` and its engine-specific half — world, bodies, one physics substep, state, contacts, rays,
render — in ``sim/<robot>_<engine>.py`` behind the small plant contract documented in ``sim/<robot>.py``.
"""

from __future__ import annotations

from typing import Any

from sim.errors import UserError

ENGINES = ("pybullet", "mujoco")
DEFAULT_ENGINE = "pybullet"


def check_engine(engine: str) -> str:
    """``engine`` if s2r knows it, else UserError naming the choices."""
    if engine not in ENGINES:
        raise UserError(f"unknown physics engine '{engine}'; use one of {', '.join(ENGINES)}")
    return engine


ENGINE_HELP = "physics engine of the simulated robot: pybullet (the training engine) or mujoco (its twin)"


def env_kwargs(env: str, engine: str) -> dict[str, Any]:
    """``gym.make`` keyword arguments that put env ``env`` (short name or id) in ``engine``: what every command's
    ``--engine`` goes through. The default engine adds nothing, so any Gymnasium env keeps working; another engine
    needs an s2r env (UserError naming the problem otherwise)."""
    check_engine(engine)
    if engine == DEFAULT_ENGINE:
        return {}
    import sim  # lazy: resolving an id loads gymnasium's registry
    from sim.task import find_env

    if find_env(sim.resolve_env_id(env)) is None:
        raise UserError(f"--engine {engine} needs an s2r env (biped, knob...); {env} only runs in its own engine")
    return {"engine": engine}
