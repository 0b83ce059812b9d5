"""`s2r run`: run the controller (the active bundle of a model store, or a bundle) against a board's serial port."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sim.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="Run the controller on a serial port",
        description="Run a policy bundle against a motor board (or `s2r emulate`) over a serial port: handshake, "
        "enable, one TORQUE per SENSOR; watchdog, NaN guard and torque clamp; SIGINT/SIGTERM disables the "
        "motors and exits 0.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--store", metavar="DIR", help="model store: run its active bundle (see `s2r flash`)")
    src.add_argument("--bundle", metavar="DIR", help="run this bundle directly (bench tests, HIL)")
    p.add_argument("--port", required=True, metavar="URL", help="serial device or URL: /dev/ttyUSB0, socket://h:p")
    p.add_argument("--baud", type=int, default=1_000_000, help="baud rate of a real UART (default 1000000)")
    p.add_argument("--telemetry", metavar="FILE", help="per-step CSV log (draw it with `s2r plot FILE`)")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N control steps")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument(
        "--watchdog-ms", type=float, default=100.0, help="no SENSOR for this long → disable motors (default 100)"
    )
    p.add_argument("--handshake-timeout", type=float, default=5.0, metavar="S", help="wait for IDENT (default 5)")
    p.add_argument("--quiet", action="store_true", help="no status line every second")
    p.add_argument("--json", action="store_true", help="print the final summary as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deploy.bundle import load_bundle
    from deploy.runtime import Controller, RuntimeConfig
    from deploy.store import ModelStore

    if args.max_steps is not None and args.max_steps < 1:
        raise UserError(f"--max-steps must be ≥ 1, got {args.max_steps}")
    if args.duration is not None and args.duration <= 0:
        raise UserError(f"--duration must be > 0 s, got {args.duration}")
    if not args.watchdog_ms > 0:
        raise UserError(f"--watchdog-ms must be > 0, got {args.watchdog_ms}")
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
    )
    summary = Controller(bundle, config).run()
    if args.json:
        print(json.dumps(summary))
    faults = " ".join(f"{k}={v}" for k, v in summary["faults"].items() if v) or "none"
    how = f" (stopped by {summary['stopped_by_signal']}, motors disabled)" if summary["stopped_by_signal"] else ""
    print(f"s2r run: {summary['steps']} steps, faults: {faults}{how}", file=sys.stderr)
    return 0
