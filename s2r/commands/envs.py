"""`s2r envs`: print each env's observation, action, physical-parameter and privileged-state tables.

Print each s2r env's observation, action, physical-parameter and privileged-state tables.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from s2r.flags import from_args
from sim.config import option
from sim.errors import UserError


@dataclass(frozen=True)
class EnvsArgs:
    names: tuple[str, ...] = option((), "short names (biped, biped-rough, biped-hardcore, knob); default all",
                                    positional=True)


HELP = "list envs with observation, action and parameter tables"
CONFIGS = (EnvsArgs,)


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import sim
    from sim.task import env_variants, find_env

    names = from_args(EnvsArgs, args).names or list(env_variants())
    for name in names:
        env_id = sim.resolve_env_id(name)
        if find_env(env_id) is None:
            raise UserError(f"{name} is not an s2r robot env, so it has no observation, motor or parameter tables; "
                            f"use one of {', '.join(env_variants())}")  # fmt: skip
        env = gym.make(env_id)
        try:
            u: Any = env.unwrapped  # an s2r env: robot_spec and param_space (see sim/)
            spec, params = u.robot_spec, u.param_space
            print(f"\n== {env_id}  (short name '{name}', robot '{spec.robot_id}', {spec.control_hz:g} Hz control, "
                  f"{env.spec.max_episode_steps if env.spec else '?'} steps) ==")
            print("\nobservation")
            print(_table(("idx", "name", "unit", "range", "meaning"),
                         [(str(i), f.name, f.unit, f"[{f.low:g}, {f.high:g}]", f.doc) for i, f in enumerate(spec.obs_fields)]))
            print("\naction (normalized in [-1, 1], × limit = torque)")
            print(_table(("idx", "motor", "limit N·m", "no-load rad/s"),
                         [(str(i), m.name, f"{m.torque_limit_nm:g}", f"{m.no_load_speed_rad_s:g}")
                          for i, m in enumerate(spec.action.motors)]))
            print("\nphysical parameters (env.reset(options={'params': {...}}))")
            print(_table(("name", "unit", "nominal", "low", "high", "meaning"), params.rows()))
            priv = getattr(u, "privileged_fields", ())
            n_state = len(priv) - len(params)
            print(f"\nprivileged state (info['privileged'] of an env made with privileged=True: the critic's with "
                  f"--ppo/--td3-privileged-critic; never the actor's): {n_state} state fields, then the "
                  f"{len(params)} parameters above as param_<name>")
            print(_table(("idx", "name", "unit", "range", "meaning"),
                         [(str(i), f.name, f.unit, f"[{f.low:g}, {f.high:g}]", f.doc) for i, f in enumerate(priv[:n_state])]))
        finally:
            env.close()
    return 0
