"""`s2r demo`: the whole path on this machine — flash the shipped bundle, lockstep HIL over a real pty on the
nominal and a held-out plant, report, dashboard PNG and GIF. Logic: s2r/demo.py.

Flash the pretrained bundle into a temporary model store, run HIL in lockstep through a real pty against the
nominal plant and a held-out plant, print a report and write OUT/ (dashboard.png, episode.gif, report.json, HIL
logs). Exit 3 only if a safety assertion failed.
"""

from __future__ import annotations

import argparse
import sys

from s2r.demo import DemoConfig, run_demo
from s2r.flags import from_args
from sim.files import check_output_dir

SAFETY_FAILED = 3  # as `s2r hil`: a safety assertion failed (1 = user error, 2 = bad flags)

HELP = "Run the end-to-end demo (no hardware, no display needed)"
CONFIGS = (DemoConfig,)


def run(ns: argparse.Namespace) -> int:
    cfg = from_args(DemoConfig, ns)
    check_output_dir(cfg.out_dir)
    report = run_demo(cfg, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(report["table"])
    return 0 if report["safety_ok"] else SAFETY_FAILED
