"""`s2r rollout`: run random-policy (or zero-torque) episodes, print a report, optionally write a GIF.

Run episodes with a random or zero policy; print return, length, distance, falls.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from s2r.flags import from_args
from sim.config import option, validate
from sim.engines import DEFAULT_ENGINE, ENGINE_HELP, ENGINES
from sim.errors import UserError
from sim.files import check_output_file


@dataclass(frozen=True)
class RolloutConfig:
    env: str = option("biped", "short name or Gymnasium id")
    episodes: int = option(3, "number of episodes", above=0)
    max_steps: int | None = option(None, "cap steps per episode (default: the env's limit)", above=0)
    policy: str = option("random", "action source", choices=("random", "zero"))
    seed: int = option(0, "seed for env and policy", low=0)
    params: str | None = option(None, 'physical parameters as JSON, e.g. \'{"ground_friction": 0.5}\'')
    gif: str | None = option(None, "record the first episode here (.mp4 needs imageio-ffmpeg)", aliases=("--video",),
                             metavar="OUT.gif|OUT.mp4")
    engine: str = option(DEFAULT_ENGINE, ENGINE_HELP, choices=ENGINES)

    def __post_init__(self) -> None:
        validate(self)


HELP = "run random-policy episodes and print a report"
CONFIGS = (RolloutConfig,)


def run(ns: argparse.Namespace) -> int:
    import sim
    from sim.rollout import rollout_report

    args = from_args(RolloutConfig, ns)
    if args.gif:
        check_output_file(args.gif)
    try:
        params = json.loads(args.params) if args.params else None
    except json.JSONDecodeError as exc:
        raise UserError(f"--params is not valid JSON ({exc.msg}); example: '{{\"ground_friction\": 0.5}}'") from None
    if params is not None and not isinstance(params, dict):
        raise UserError(f"--params must be a JSON object of parameter values, e.g. '{{\"ground_friction\": 0.5}}', "
                        f"not {type(params).__name__}")  # fmt: skip
    from sim.task import find_env

    if params and find_env(sim.resolve_env_id(args.env)) is None:
        raise UserError(f"--params sets an s2r robot's physical parameters; {args.env} has none (`s2r envs` lists them)")
    report = rollout_report(args.env, episodes=args.episodes, policy=args.policy, seed=args.seed,
                            params=params, max_steps=args.max_steps, gif_path=args.gif, engine=args.engine)
    print(report.table())
    if args.gif:
        print(f"wrote {args.gif}")
    return 0
