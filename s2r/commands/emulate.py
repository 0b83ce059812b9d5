"""`s2r emulate`: the simulator plays the motor board on a pseudo-terminal or serial URL.

Run the firmware emulator: opens a pty (prints its path) or --port URL, answers HELLO, streams SENSOR, applies
TORQUE with the board clamp and watchdog. Protocol: docs/protocol.md. The E-stop input: `kill -USR1 PID` presses
it, `kill -USR2 PID` releases it (the board stays disarmed until the host sends ENABLE after the release).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from dataclasses import dataclass

from firmware_bridge.emulator import Emulator, EmulatorConfig
from s2r.flags import from_args
from sim.config import option, validate


@dataclass(frozen=True)
class EmulateArgs:
    port: str | None = option(None, "serial device or URL (socket://, loop://); default: a new pty")
    duration_s: float | None = option(None, "stop after this long, s (default: at SIGINT/SIGTERM)", above=0,
                                      flag="--duration", metavar="S")
    log: str | None = option(None, "JSON-lines log of steps, episodes and events (for s2r hil)")

    def __post_init__(self) -> None:
        validate(self)


HELP = "Run the firmware emulator (the simulator as the motor board)"
CONFIGS = (EmulatorConfig, EmulateArgs)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(ns: argparse.Namespace) -> int:
    from firmware_bridge.link import open_port, open_pty

    cfg, args = from_args(EmulatorConfig, ns), from_args(EmulateArgs, ns)
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
        mode = "lockstep" if cfg.lockstep else "real-time"
        print(f"port: {path}", flush=True)
        print(
            f"s2r emulate: {cfg.env} board ({mode}, plant {cfg.plant}, {cfg.engine}, watchdog {cfg.watchdog_ms} ms)",
            flush=True,
        )
        try:
            summary = emu.serve(args.duration_s)
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
