"""`s2r run`: run the controller (the active bundle of a model store, or a bundle) against a board's serial port.

Run a policy bundle against a motor board (or `s2r emulate`) over a serial port: handshake, enable with a torque
ramp, one TORQUE per SENSOR; watchdog, sensor plausibility checks, NaN guard and torque clamp. A board E-stop or
repeated bad SENSOR frames latch the motors off until the operator re-arms: `kill -USR1 PID`, or type r and Enter
when stdin is a terminal. SIGINT/SIGTERM disables the motors and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from deploy.runtime import RuntimeConfig
from s2r.flags import from_args
from sim.config import option
from sim.errors import UserError


@dataclass(frozen=True)
class RunTarget:
    """Which bundle ``s2r run`` runs, and how it reports."""

    store: str | None = option(None, "model store: run its active bundle (see `s2r flash`)", metavar="DIR")
    bundle: str | None = option(None, "run this bundle directly (bench tests, HIL)", metavar="DIR")
    json: bool = option(False, "print the final summary as JSON on stdout")

    def __post_init__(self) -> None:
        if (self.store is None) == (self.bundle is None):
            raise UserError("give one of --store DIR (its active bundle) or --bundle DIR")


HELP = "Run the controller on a serial port"
CONFIGS = (RunTarget, RuntimeConfig)


def run(ns: argparse.Namespace) -> int:
    from deploy.bundle import load_bundle
    from deploy.runtime import Controller
    from deploy.store import ModelStore

    args, config = from_args(RunTarget, ns), from_args(RuntimeConfig, ns)
    bundle = ModelStore(args.store).active_bundle() if args.store else load_bundle(args.bundle)
    summary = Controller(bundle, config).run()
    if args.json:
        print(json.dumps(summary))
    faults = " ".join(f"{k}={v}" for k, v in summary["faults"].items() if v) or "none"
    how = f" (stopped by {summary['stopped_by_signal']}, motors disabled)" if summary["stopped_by_signal"] else ""
    latched = f", ended in {summary['state'].upper()}: {summary['reason']}" if summary["reason"] else ""
    print(f"s2r run: {summary['steps']} steps, faults: {faults}{latched}{how}", file=sys.stderr)
    return 0
