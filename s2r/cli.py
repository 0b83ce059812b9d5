"""`s2r` entry point: one sub-command per module in ``s2r/commands``.

Each command module defines ``register(subparsers)`` that adds its parser and sets ``func(args) -> int``.
User errors (ValueError, missing files, serial errors...) print one line and exit 1; bad flags exit 2.
Set ``S2R_DEBUG=1`` to get the full traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from s2r import __version__

# order = order in `s2r --help`; the data flow reads top to bottom
COMMANDS = (
    "envs",
    "rollout",
    "train",
    "eval",
    "stress",
    "plot",
    "export",
    "flash",
    "emulate",
    "run",
    "hil",
    "demo",
)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The `s2r` parser; ``only``: register just that command (its module's imports are all a run pays for)."""
    parser = _Parser(prog="s2r", description="Sim-to-real robot control: train → export → flash → hil → run.")
    parser.add_argument("--version", action="version", version=f"s2r {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS if only is None else (only,):
        module = importlib.import_module(f"s2r.commands.{name.replace('-', '_')}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # import only the command being run: `s2r run` on a controller must not pay for (or need) torch, which
    # `s2r train` imports to build its flags; `s2r --help` and unknown commands still register all of them
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first if first in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("s2r: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, EOFError, RuntimeError) as exc:
        if os.environ.get("S2R_DEBUG"):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"s2r {args.command}: error: {msg}", file=sys.stderr)
        return 1
