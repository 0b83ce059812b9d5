"""`s2r rollout`: run random-policy (or zero-torque) episodes, print a report, optionally write a GIF."""

from __future__ import annotations

import argparse
import json

from sim.errors import UserError, require_positive
from sim.files import check_output_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rollout", help="run random-policy episodes and print a report",
                       description="Run episodes with a random or zero policy; print return, length, distance, falls.")
    p.add_argument("--env", default="biped", help="short name or Gymnasium id (default: biped)")
    p.add_argument("--episodes", type=int, default=3, help="number of episodes (default: 3)")
    p.add_argument("--max-steps", type=int, default=None, help="cap steps per episode (default: the env's limit)")
    p.add_argument("--policy", choices=("random", "zero"), default="random", help="action source (default: random)")
    p.add_argument("--seed", type=int, default=0, help="seed for env and policy (default: 0)")
    p.add_argument("--params", default=None, help='physical parameters as JSON, e.g. \'{"ground_friction": 0.5}\'')
    p.add_argument("--gif", "--video", dest="gif", default=None, metavar="OUT.gif|OUT.mp4",
                   help="record the first episode here (.mp4 needs imageio-ffmpeg)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sim
    from sim.rollout import rollout_report

    require_positive("--episodes", args.episodes)
    require_positive("--seed", args.seed, allow_zero=True)
    if args.max_steps is not None:
        require_positive("--max-steps", args.max_steps)
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
                            params=params, max_steps=args.max_steps, gif_path=args.gif)
    print(report.table())
    if args.gif:
        print(f"wrote {args.gif}")
    return 0
