"""`s2r run`: Run the controller on a serial port. Not implemented yet: issue #7)"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="Run the controller on a serial port", description="Run the controller on a serial port.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("s2r run: not implemented yet (issue #7)", file=sys.stderr)
    return 2
