"""Domain randomization: parameter spaces, samplers, fixed-DR presets, ADR, held-out plants.

Talks to envs only through the named physical parameters of ``sim.params`` (``reset(options={"params": ...})``).
The training loop gets its :class:`~domain_rand.base.ParamSource` from :func:`make_source` and scores finished
episodes with :func:`episode_performance`.
"""

from __future__ import annotations

from typing import Any

from domain_rand.adr import ADR, ADRConfig, ADRParam, default_adr_config, load_adr_config
from domain_rand.base import NominalSource, ParamSource
from domain_rand.fixed import NOMINAL_NAMES, FixedDRSource, load_ranges
from domain_rand.success import episode_metrics, episode_performance, robot_of_env, task_success
from sim.errors import UserError
from sim.task import get_task

__all__ = [
    "ADR",
    "ADRConfig",
    "ADRParam",
    "FixedDRSource",
    "NominalSource",
    "ParamSource",
    "episode_metrics",
    "episode_performance",
    "make_source",
    "robot_of_env",
    "task_success",
]


def make_source(
    env: Any, dr: str | None = None, adr: bool = False, adr_config: str | None = None, seed: int = 0
) -> ParamSource:
    """The parameter source for training ``env``: nominal, fixed DR (``dr`` = preset name or JSON path) or ADR.

    ``adr_config`` (a JSON file, see :func:`domain_rand.adr.adr_config_from_dict`) overrides the per-robot ADR
    defaults and implies ``adr``. Asking for DR on an env without physical parameters is a ValueError.
    """
    want_adr = adr or adr_config is not None
    if dr is not None and dr in NOMINAL_NAMES:
        dr = None
    if dr is None and not want_adr:
        return NominalSource()
    space = getattr(env.unwrapped, "param_space", None)
    if space is None:
        env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        raise UserError(f"env {env_id} has no physical parameters; --dr/--adr need an s2r env (biped, knob)")
    if dr is not None and want_adr:
        raise UserError("--dr and --adr are exclusive; give ADR initial ranges in --adr-config instead")
    if dr is not None:
        return FixedDRSource(space, load_ranges(space, dr), seed=seed)
    task = get_task(space.robot_id)
    if adr_config is not None:  # the file may override only some keys; the rest are the robot's defaults
        config = load_adr_config(adr_config, default_adr_config(task.name) if task.adr is not None else None)
    else:
        config = default_adr_config(task.name)
    if config.performance not in (*task.metrics, "return"):
        raise UserError(f"ADR performance '{config.performance}' is not a metric of {task.name}; use one of "
                        f"{', '.join((*task.metrics, 'return'))}")  # fmt: skip
    return ADR(space, config, seed=seed)
