"""`s2r emulate`: the simulator plays the motor board on a pseudo-terminal or serial URL."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys

from sim.engines import DEFAULT_ENGINE, ENGINE_HELP, ENGINES
from sim.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "emulate",
        help="Run the firmware emulator (the simulator as the motor board)",
        description="Run the firmware emulator: opens a pty (prints its path) or --port URL, answers HELLO, "
        "streams SENSOR, applies TORQUE with the board clamp and watchdog. Protocol: docs/protocol.md. "
        "The E-stop input: `kill -USR1 PID` presses it, `kill -USR2 PID` releases it (the board stays disarmed "
        "until the host sends ENABLE after the release).",
    )
    p.add_argument(
        "--robot", default="biped", help="env short name: biped, biped-rough, biped-hardcore, knob"
    )
    p.add_argument("--plant", default="nominal", help="held-out physics variant (domain_rand.plants)")
    p.add_argument(
        "--port", default=None, help="serial device or URL (socket://, loop://); default: a new pty"
    )
    p.add_argument(
        "--lockstep", action="store_true", help="one control period per TORQUE (deterministic HIL)"
    )
    p.add_argument("--seed", type=int, default=0, help="episode i resets the env with seed + i")
    p.add_argument("--engine", choices=ENGINES, default=DEFAULT_ENGINE, help=ENGINE_HELP)
    p.add_argument(
        "--watchdog-ms", type=int, default=100, help="zero torque after this long without TORQUE, 1..65535 ms"
    )
    p.add_argument(
        "--ramp-ms", type=float, default=0.0, help="board torque clamp ramps in over this long after ENABLE (0)"
    )
    p.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds (default: SIGINT)"
    )
    p.add_argument("--log", default=None, help="JSON-lines log of steps, episodes and events (for s2r hil)")
    p.set_defaults(func=run)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from firmware_bridge.emulator import Emulator, EmulatorConfig
    from firmware_bridge.link import open_port, open_pty

    if not 1 <= args.watchdog_ms <= 65535:
        raise UserError(f"--watchdog-ms must be a whole number in 1..65535, got {args.watchdog_ms}")
    if not (math.isfinite(args.ramp_ms) and 0 <= args.ramp_ms <= 10_000):
        raise UserError(f"--ramp-ms must be a finite number in 0..10000, got {args.ramp_ms}")
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        raise UserError(f"--duration must be a finite number > 0 s, got {args.duration}")
    if args.seed < 0:
        raise UserError(f"--seed must be ≥ 0, got {args.seed}")
    cfg = EmulatorConfig(
        env=args.robot, plant=args.plant, seed=args.seed, lockstep=args.lockstep, watchdog_ms=args.watchdog_ms,
        engine=args.engine,
        ramp_ms=args.ramp_ms,
    )  # fmt: skip
    if args.port is None:
        port, path = open_pty()
    else:
        port, path = open_port(args.port), args.port
    # SIGTERM (the HIL harness, systemd) ends the run like Ctrl-C: motors off, summary written
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(args.log, "w")) if args.log else None  # noqa: SIM115
        emu = Emulator(cfg, port, log=log)
        signal.signal(signal.SIGUSR1, lambda *_: emu.set_estop(True))  # the E-stop input
        signal.signal(signal.SIGUSR2, lambda *_: emu.set_estop(False))
        stack.callback(port.close)
        stack.callback(emu.close)
        mode = "lockstep" if args.lockstep else "real-time"
        print(f"port: {path}", flush=True)
        print(
            f"s2r emulate: {cfg.env} board ({mode}, plant {cfg.plant}, {cfg.engine}, watchdog {cfg.watchdog_ms} ms)",
            flush=True,
        )
        try:
            summary = emu.serve(args.duration)
        except KeyboardInterrupt:
            emu._disarm()
            summary = emu.summary()
        if log is not None:
            log.write(json.dumps({"ev": "summary", **summary}) + "\n")
            log.flush()
        print(
            f"s2r emulate: {summary['steps']} steps, {summary['episodes_completed']} episodes, "
            f"{summary['watchdog_trips']} watchdog trips, {summary['link']['crc_errors']} CRC errors",
            file=sys.stderr,
        )
    return 0
