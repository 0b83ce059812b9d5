"""The physics engines s2r's robots run in, and the one check every entry point (env kwarg, CLI flag) uses.

Each robot keeps its engine-independent half (motor model loop, observation, reward, termination, info) in
``sim/<robot>.py`` and its engine-specific half — world, bodies, one physics substep, state, contacts, rays,
render — in ``sim/<robot>_<engine>.py`` behind the small plant contract documented in ``sim/<robot>.py``.
"""

from __future__ import annotations

from sim.errors import UserError

ENGINES = ("pybullet", "mujoco")
DEFAULT_ENGINE = "pybullet"


def check_engine(engine: str) -> str:
    """``engine`` if s2r knows it, else ValueError naming the choices."""
    if engine not in ENGINES:
        raise UserError(f"unknown physics engine '{engine}'; use one of {', '.join(ENGINES)}")
    return engine
