"""`s2r flash`: Flash a bundle into a model store with A/B slots. Not implemented yet: issue #7)"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flash", help="Flash a bundle into a model store with A/B slots", description="Flash a bundle into a model store with A/B slots.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("s2r flash: not implemented yet (issue #7)", file=sys.stderr)
    return 2
