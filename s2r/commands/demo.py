"""`s2r demo`: the whole path on this machine — flash the shipped bundle, lockstep HIL over a real pty on the
nominal and a held-out plant, report, dashboard PNG and GIF. Logic: s2r/demo.py."""

from __future__ import annotations

import argparse
import sys

from sim.engines import DEFAULT_ENGINE, ENGINE_HELP, ENGINES
from sim.errors import UserError, require_positive
from sim.files import check_output_dir

SAFETY_FAILED = 3  # as `s2r hil`: a safety assertion failed (1 = user error, 2 = bad flags)
MAX_STEPS = 100_000  # a demo, not an endurance run (that is `s2r hil --max-steps N`): ~33 min of biped time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="Run the end-to-end demo (no hardware, no display needed)",
        description="Flash the pretrained bundle into a temporary model store, run HIL in lockstep through a real "
        "pty against the nominal plant and a held-out plant, print a report and write OUT/ (dashboard.png, "
        "episode.gif, report.json, HIL logs). Exit 3 only if a safety assertion failed.",
    )
    p.add_argument("--robot", default=None, help="which robot: biped, knob or another registered one (default: biped)")
    p.add_argument(
        "--quick", action="store_true", help="CI-sized variant: a few seconds of robot time per run"
    )
    p.add_argument("--out", default="demo_out", metavar="DIR", help="output folder (default demo_out/)")
    p.add_argument(
        "--bundle", default=None, metavar="DIR", help="use this bundle instead of the pretrained one"
    )
    p.add_argument("--plant", default=None, help="held-out plant to run besides nominal (default worst_case)")
    p.add_argument("--steps", type=int, default=None, metavar="N", help="control steps per HIL run "
                   f"(default: one full episode; 150 with --quick; at most {MAX_STEPS})")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    p.add_argument("--engine", choices=ENGINES, default=DEFAULT_ENGINE, help=ENGINE_HELP + "; the sim-to-sim row "
                   "runs the bundle on the nominal plant of the other engine")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from s2r.demo import DemoConfig, run_demo

    if args.steps is not None and not 1 <= args.steps <= MAX_STEPS:
        raise UserError(f"--steps must be in 1..{MAX_STEPS} for the demo, got {args.steps}; for longer runs use "
                        "`s2r hil --bundle DIR --lockstep --max-steps N`")  # fmt: skip
    require_positive("--seed", args.seed, allow_zero=True)
    check_output_dir(args.out)

    cfg = DemoConfig(robot=args.robot, quick=args.quick, out_dir=args.out, bundle=args.bundle, plant=args.plant,
                     seed=args.seed, steps=args.steps, engine=args.engine)  # fmt: skip
    report = run_demo(cfg, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(report["table"])
    return 0 if report["safety_ok"] else SAFETY_FAILED
