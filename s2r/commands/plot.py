"""`s2r plot`: Plot learning curves, ADR ranges, telemetry. Not implemented yet: issue #5)"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="Plot learning curves, ADR ranges, telemetry", description="Plot learning curves, ADR ranges, telemetry.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("s2r plot: not implemented yet (issue #5)", file=sys.stderr)
    return 2
