"""`s2r hil`: hardware-in-the-loop run — emulator and controller as separate processes over a real pty.

Start `s2r emulate` and `s2r run --bundle B` joined by a real pty (with optional fault injection between them),
run for --duration, print the report. Exit 3 if a safety assertion failed.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, replace
from typing import Any

from s2r.flags import from_args
from s2r.hil import HilConfig, format_report, run_hil
from sim.config import option
from sim.errors import UserError
from sim.files import atomic_write, check_output_file

SAFETY_FAILED = 3  # exit code when a safety assertion fails (1 = user error, 2 = bad flags)


@dataclass(frozen=True)
class HilArgs:
    report: str | None = option(None, "also write the report as JSON here", metavar="FILE")


HELP = "Hardware-in-the-loop test against the emulator"
CONFIGS = (HilConfig, HilArgs)


def run(ns: argparse.Namespace) -> int:
    from deploy.bundle import load_bundle
    from firmware_bridge.emulator import plant_params

    cfg, args = from_args(HilConfig, ns), from_args(HilArgs, ns)
    if args.report:
        check_output_file(args.report)
    if not os.path.isdir(cfg.bundle):
        raise FileNotFoundError(f"bundle folder '{cfg.bundle}' not found; export one with `s2r export`")
    bundle = load_bundle(cfg.bundle)
    plant_params(bundle.robot, cfg.plant)  # an unknown plant is one line here, not a failed emulator start
    # --max-steps alone runs until those steps are done, whatever the box's speed
    cfg = replace(cfg, duration_s=cfg.run_time_s(float(bundle.manifest["control_hz"])))
    faults = cfg.faults
    if faults.disconnect_at is not None and faults.disconnect_at >= cfg.duration_s:
        raise UserError(f"--fault disconnect_at={faults.disconnect_at:g} is after the run ends (--duration "
                        f"{cfg.duration_s:g} s), so the link would never be cut; give a longer --duration or an "
                        "earlier disconnect_at")  # fmt: skip
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
