"""`s2r emulate`: the simulator plays the motor board on a pseudo-terminal or serial URL."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys

from sim.engines import DEFAULT_ENGINE, ENGINE_HELP, ENGINES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "emulate",
        help="Run the firmware emulator (the simulator as the motor board)",
        description="Run the firmware emulator: opens a pty (prints its path) or --port URL, answers HELLO, "
        "streams SENSOR, applies TORQUE with the board clamp and watchdog. Protocol: docs/protocol.md.",
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
    p.add_argument("--watchdog-ms", type=int, default=100, help="zero torque after this long without TORQUE")
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

    if args.watchdog_ms <= 0 or args.watchdog_ms > 65535:
        raise ValueError(f"--watchdog-ms {args.watchdog_ms} must be in 1..65535")
    cfg = EmulatorConfig(
        env=args.robot, plant=args.plant, seed=args.seed, lockstep=args.lockstep, watchdog_ms=args.watchdog_ms,
        engine=args.engine,
    )
    if args.port is None:
        port, path = open_pty()
    else:
        port, path = open_port(args.port), args.port
    # SIGTERM (the HIL harness, systemd) ends the run like Ctrl-C: motors off, summary written
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(args.log, "w")) if args.log else None  # noqa: SIM115
        emu = Emulator(cfg, port, log=log)
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
