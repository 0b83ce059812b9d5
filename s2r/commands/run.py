"""`s2r run`: run the controller (the active bundle of a model store, or a bundle) against a board's serial port."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from sim.errors import UserError

# RuntimeConfig's defaults (the single source), as flags; kept here so `s2r --help` does not import onnxruntime.
# tests/deploy/test_runtime.py checks them against runtime_defaults().
_RUNTIME_DEFAULTS = {"baud": 1_000_000, "watchdog_ms": 100.0, "handshake_timeout_s": 5.0, "fault_frames": 3}


def runtime_defaults() -> dict[str, float]:
    """The flag defaults as RuntimeConfig defines them."""
    from deploy.runtime import RuntimeConfig

    c = RuntimeConfig(port="")
    return {"baud": c.baud, "watchdog_ms": c.watchdog_s * 1e3, "handshake_timeout_s": c.handshake_timeout_s,
            "fault_frames": c.fault_frames}  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    d = _RUNTIME_DEFAULTS
    p = sub.add_parser(
        "run",
        help="Run the controller on a serial port",
        description="Run a policy bundle against a motor board (or `s2r emulate`) over a serial port: handshake, "
        "enable with a torque ramp, one TORQUE per SENSOR; watchdog, sensor plausibility checks, NaN guard and "
        "torque clamp. A board E-stop or repeated bad SENSOR frames latch the motors off until the operator "
        "re-arms: `kill -USR1 PID`, or type r and Enter when stdin is a terminal. SIGINT/SIGTERM disables the "
        "motors and exits 0.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--store", metavar="DIR", help="model store: run its active bundle (see `s2r flash`)")
    src.add_argument("--bundle", metavar="DIR", help="run this bundle directly (bench tests, HIL)")
    p.add_argument("--port", required=True, metavar="URL", help="serial device or URL: /dev/ttyUSB0, socket://h:p")
    p.add_argument("--baud", type=int, default=d["baud"], help=f"baud rate of a real UART (default {d['baud']})")
    p.add_argument("--telemetry", metavar="FILE", help="per-step CSV log (draw it with `s2r plot FILE`)")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N control steps")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument(
        "--watchdog-ms", type=float, default=d["watchdog_ms"],
        help=f"no SENSOR for this long → disable motors, 1..60000 (default {d['watchdog_ms']:g})",
    )  # fmt: skip
    p.add_argument(
        "--handshake-timeout", type=float, default=d["handshake_timeout_s"], metavar="S",
        help=f"wait for IDENT, s (default {d['handshake_timeout_s']:g})",
    )  # fmt: skip
    p.add_argument(
        "--ramp-ms", type=float, default=None, metavar="MS",
        help="torque ramp after each ENABLE, 0..10000 ms (default: 500 on a real-time board, 0 on a lockstep "
        "emulator, whose HIL torques must match the simulator's step for step)",
    )  # fmt: skip
    p.add_argument(
        "--fault-frames", type=int, default=d["fault_frames"], metavar="N",
        help=f"this many bad SENSOR frames in a row latch FAULT, 1..1000 (default {d['fault_frames']})",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no status line every second")
    p.add_argument("--json", action="store_true", help="print the final summary as JSON on stdout")
    p.set_defaults(func=run)


def _check(flag: str, value: float | None, lo: float, hi: float, unit: str = "") -> None:
    """One-line error unless ``value`` is None or a finite number in [lo, hi]."""
    if value is not None and not (math.isfinite(value) and lo <= value <= hi):
        raise UserError(f"{flag} must be a finite number in {lo:g}..{hi:g}{unit}, got {value}")


def run(args: argparse.Namespace) -> int:
    from deploy.bundle import load_bundle
    from deploy.runtime import Controller, RuntimeConfig
    from deploy.store import ModelStore

    _check("--max-steps", args.max_steps, 1, 1e12)
    _check("--duration", args.duration, 1e-3, 1e9, " s")
    _check("--watchdog-ms", args.watchdog_ms, 1, 60_000, " ms")
    _check("--handshake-timeout", args.handshake_timeout, 1e-3, 3600, " s")
    _check("--ramp-ms", args.ramp_ms, 0, 10_000, " ms")
    _check("--fault-frames", args.fault_frames, 1, 1000)
    _check("--baud", args.baud, 1, 100_000_000)
    bundle = ModelStore(args.store).active_bundle() if args.store else load_bundle(args.bundle)
    config = RuntimeConfig(
        port=args.port,
        baud=args.baud,
        watchdog_s=args.watchdog_ms * 1e-3,
        max_steps=args.max_steps,
        duration_s=args.duration,
        telemetry=Path(args.telemetry) if args.telemetry else None,
        handshake_timeout_s=args.handshake_timeout,
        quiet=args.quiet,
        ramp_s=None if args.ramp_ms is None else args.ramp_ms * 1e-3,
        fault_frames=args.fault_frames,
    )
    summary = Controller(bundle, config).run()
    if args.json:
        print(json.dumps(summary))
    faults = " ".join(f"{k}={v}" for k, v in summary["faults"].items() if v) or "none"
    how = f" (stopped by {summary['stopped_by_signal']}, motors disabled)" if summary["stopped_by_signal"] else ""
    latched = f", ended in {summary['state'].upper()}: {summary['reason']}" if summary["reason"] else ""
    print(f"s2r run: {summary['steps']} steps, faults: {faults}{latched}{how}", file=sys.stderr)
    return 0
