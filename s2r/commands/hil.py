"""`s2r hil`: Hardware-in-the-loop test against the emulator. Not implemented yet: issue #8)"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hil", help="Hardware-in-the-loop test against the emulator", description="Hardware-in-the-loop test against the emulator.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("s2r hil: not implemented yet (issue #8)", file=sys.stderr)
    return 2
