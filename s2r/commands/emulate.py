"""`s2r emulate`: Run the firmware emulator. Not implemented yet: issue #8)"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("emulate", help="Run the firmware emulator", description="Run the firmware emulator.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("s2r emulate: not implemented yet (issue #8)", file=sys.stderr)
    return 2
