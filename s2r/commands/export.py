"""`s2r export`: Export a checkpoint to an ONNX bundle. Not implemented yet: issue #7)"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="Export a checkpoint to an ONNX bundle", description="Export a checkpoint to an ONNX bundle.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("s2r export: not implemented yet (issue #7)", file=sys.stderr)
    return 2
