"""`s2r demo`: the whole path on this machine. Until the pretrained bundles land (issue #9) it runs a short
random-policy biped rollout and prints a report; it must never fail on a fresh install."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo", description="Run the end-to-end demo.")
    p.add_argument("--robot", choices=("biped", "knob"), default="biped", help="which robot (default: biped)")
    p.add_argument("--quick", action="store_true", help="CI-sized variant")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sim.rollout import rollout_report

    report = rollout_report("biped", episodes=1 if args.quick else 3, policy="random", seed=0,
                            max_steps=200 if args.quick else None)
    print(report.table())
    return 0
