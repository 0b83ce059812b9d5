"""`s2r hil`: hardware-in-the-loop run — emulator and controller as separate processes over a real pty."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from sim.engines import DEFAULT_ENGINE, ENGINE_HELP, ENGINES

SAFETY_FAILED = 3  # exit code when a safety assertion fails (1 = user error, 2 = bad flags)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "hil",
        help="Hardware-in-the-loop test against the emulator",
        description="Start `s2r emulate` and `s2r run --bundle B` joined by a real pty (with optional fault "
        "injection between them), run for --duration, print the report. Exit 3 if a safety assertion failed.",
    )
    p.add_argument("--bundle", required=True, metavar="DIR", help="exported policy bundle (s2r export)")
    p.add_argument(
        "--duration", type=float, default=10.0, metavar="S", help="controller run time, s (default 10)"
    )
    p.add_argument("--max-steps", type=int, default=None, metavar="N", help="stop after N control steps")
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
    from s2r.hil import FaultSpec, HilConfig, run_hil

    if not args.duration > 0:
        raise ValueError(f"--duration must be > 0 s, got {args.duration}")
    if not os.path.isdir(args.bundle):
        raise OSError(f"bundle folder '{args.bundle}' not found; export one with `s2r export`")
    cfg = HilConfig(
        bundle=args.bundle, duration_s=args.duration, max_steps=args.max_steps, lockstep=args.lockstep,
        faults=FaultSpec.parse(args.fault), plant=args.plant, seed=args.seed, watchdog_ms=args.watchdog_ms,
        out_dir=args.out, plots=not args.no_plots, engine=args.engine,
    )  # fmt: skip
    report = run_hil(cfg)
    if args.report:
        path = Path(args.report)
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(report, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    print(_format(report))
    return 0 if report["safety"]["ok"] else SAFETY_FAILED


def _format(r: dict) -> str:
    lat, s = r["latency_ms"], r["safety"]

    def ms(x):
        return "n/a" if x is None else f"{x:.2f}"

    outcome = (
        f"{len(r['episodes'])} episodes done, return {r['return_mean']}, falls {r['falls']}, "
        f"successes {r['successes']}, distance {r['distance_m']}"
    )
    lines = [
        f"HIL {r['robot']} plant={r['plant']} engine={r['engine']} {'lockstep' if r['lockstep'] else 'real-time'}: {r['steps']} steps "
        f"in {r['wall_s']} s",
        f"  outcome: {outcome}",
        f"  control rate {r['control_rate_hz']} Hz (target {r['control_hz_target']}), latency p50 {ms(lat['p50'])} "
        f"p99 {ms(lat['p99'])} max {ms(lat['max'])} ms, deadline misses {r['deadline_misses']}",
        f"  link: CRC errors {r['crc_errors']}, resyncs {r['resyncs']}, seq gaps {r['seq_gaps']}, "
        f"watchdog trips {r['watchdog_trips']}",
        f"  safety: {'OK' if s['ok'] else 'FAILED'} {s}",
    ]
    if r.get("plot"):
        lines.append(f"  plots: {r['plot']}")
    return "\n".join(lines)
