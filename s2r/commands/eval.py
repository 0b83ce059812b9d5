"""`s2r eval`: Evaluate a policy. Not implemented yet: issue #5)"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="Evaluate a policy", description="Evaluate a policy.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("s2r eval: not implemented yet (issue #5)", file=sys.stderr)
    return 2
