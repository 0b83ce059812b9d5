"""`s2r hil`: hardware-in-the-loop run — emulator and controller as separate processes over a real pty."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from sim.engines import DEFAULT_ENGINE, ENGINE_HELP, ENGINES
from sim.errors import UserError, require_positive
from sim.files import atomic_write, check_output_file

SAFETY_FAILED = 3  # exit code when a safety assertion fails (1 = user error, 2 = bad flags)
DEFAULT_DURATION_S = 10.0  # run time without --duration or --max-steps


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "hil",
        help="Hardware-in-the-loop test against the emulator",
        description="Start `s2r emulate` and `s2r run --bundle B` joined by a real pty (with optional fault "
        "injection between them), run for --duration, print the report. Exit 3 if a safety assertion failed.",
    )
    p.add_argument("--bundle", required=True, metavar="DIR", help="exported policy bundle (s2r export)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="controller run time, s (default 10; with --max-steps: as long as those steps take)")
    p.add_argument("--max-steps", type=int, default=None, metavar="N", help="stop after N control steps")  # fmt: skip
    p.add_argument("--lockstep", action="store_true", help="emulator advances one period per command")
    p.add_argument(
        "--fault",
        default=None,
        metavar="SPEC",
        help="e.g. drop=0.01,corrupt=0.001,delay_ms=5,disconnect_at=5",
    )
    p.add_argument("--plant", default="nominal", help="held-out physics variant for the emulator")
    p.add_argument("--seed", type=int, default=0, help="emulator episode seed (episode i: seed + i)")
    p.add_argument("--engine", choices=ENGINES, default=DEFAULT_ENGINE, help=ENGINE_HELP)
    p.add_argument("--watchdog-ms", type=int, default=100, help="board watchdog timeout (default 100)")
    p.add_argument("--report", default=None, metavar="FILE", help="also write the report as JSON here")
    p.add_argument("--out", default="hil_out", metavar="DIR", help="logs and plots (default hil_out/)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deploy.bundle import load_bundle
    from firmware_bridge.emulator import plant_params
    from s2r.hil import FaultSpec, HilConfig, format_report, run_hil

    for flag, value in (("--duration", args.duration), ("--max-steps", args.max_steps)):
        if value is not None:
            require_positive(flag, value)
    require_positive("--seed", args.seed, allow_zero=True)
    require_positive("--watchdog-ms", args.watchdog_ms)
    if args.report:
        check_output_file(args.report)
    if not os.path.isdir(args.bundle):
        raise FileNotFoundError(f"bundle folder '{args.bundle}' not found; export one with `s2r export`")
    faults = FaultSpec.parse(args.fault)
    bundle = load_bundle(args.bundle)
    plant_params(bundle.robot, args.plant)  # an unknown plant is one line here, not a failed emulator start
    duration = args.duration
    if duration is None:  # --max-steps alone runs until those steps are done, whatever the box's speed
        hz = float(bundle.manifest["control_hz"])
        duration = DEFAULT_DURATION_S if args.max_steps is None else max(DEFAULT_DURATION_S, 20 * args.max_steps / hz)
    if faults.disconnect_at is not None and faults.disconnect_at >= duration:
        raise UserError(f"--fault disconnect_at={faults.disconnect_at:g} is after the run ends (--duration "
                        f"{duration:g} s), so the link would never be cut; give a longer --duration or an earlier "
                        "disconnect_at")  # fmt: skip
    cfg = HilConfig(
        bundle=args.bundle, duration_s=duration, max_steps=args.max_steps, lockstep=args.lockstep,
        faults=faults, plant=args.plant, seed=args.seed, watchdog_ms=args.watchdog_ms,
        out_dir=args.out, plots=not args.no_plots, engine=args.engine,
    )  # fmt: skip
    report = run_hil(cfg)
    report["stopped_by"] = _stopped_by(report, cfg)
    if args.report:
        atomic_write(args.report, json.dumps(report, indent=1) + "\n")
    print(format_report(report))
    if report["safety"].get("disconnect_reached") is False:
        raise UserError(f"the link was never cut: the run ended ({report['stopped_by']}) before disconnect_at="
                        f"{faults.disconnect_at:g} s; the disconnect was not tested: give a longer run or an "
                        "earlier disconnect_at")  # fmt: skip
    return 0 if report["safety"]["ok"] else SAFETY_FAILED


def _stopped_by(report: dict, cfg: Any) -> str:
    """Which limit ended the run, said plainly (a --max-steps cut short by --duration is not silent)."""
    steps = int(report["host"].get("steps") or 0)
    if cfg.max_steps is not None and steps >= cfg.max_steps:
        return f"--max-steps {cfg.max_steps} reached"
    line = f"--duration {cfg.duration_s:g} s reached"
    if cfg.max_steps is not None:
        line += f" after {steps} of --max-steps {cfg.max_steps} steps"
    return line
