"""`s2r` entry point: one sub-command per module in ``s2r/commands``.

Each command module holds ``HELP``, ``CONFIGS`` (the config dataclasses its flags are generated from, by
:mod:`s2r.flags`), optionally ``EPILOG`` and ``extend(parser)``, and ``run(args) -> int``; its docstring after
the first paragraph is its ``--help`` description.
User errors (:class:`sim.errors.UserError`, and the environment's: missing files, permissions, serial ports)
print one line and exit 1; bad flags exit 2; a training stopped by SIGINT/SIGTERM exits 128 + the signal number.
Anything else is a bug in s2r: its traceback is shown with a line asking to report it, exit 1.
Set ``S2R_DEBUG=1`` to get the full traceback of a user error too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback

from s2r import __version__
from s2r.flags import add_flags
from sim.errors import UserError

# order = order in `s2r --help`; the data flow reads top to bottom
COMMANDS = (
    "envs",
    "rollout",
    "train",
    "sweep",
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


def add_command(sub: argparse._SubParsersAction, name: str) -> None:
    """The parser of ``s2r NAME``, its flags generated from the command module's config dataclasses."""
    module = importlib.import_module(f"s2r.commands.{name.replace('-', '_')}")
    description = (module.__doc__ or "").split("\n\n", 1)[-1]  # the docstring's first paragraph is for developers
    help_ = module.HELP.replace("%", "%%")  # argparse %-formats a command's help (not its description)
    p = sub.add_parser(name, help=help_, description=description, epilog=getattr(module, "EPILOG", None))
    for cls in module.CONFIGS:
        add_flags(p, cls)
    if hasattr(module, "extend"):
        module.extend(p)
    p.set_defaults(func=module.run, parser=p)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The `s2r` parser; ``only``: register just that command (its module's imports are all a run pays for)."""
    parser = _Parser(prog="s2r", description="Sim-to-real robot control: train → export → flash → hil → run.")
    parser.add_argument("--version", action="version", version=f"s2r {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS if only is None else (only,):
        add_command(sub, name)
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
    except BrokenPipeError:
        # the reader went away (`s2r envs | head`): stop quietly, as a shell tool does; stdout goes to /dev/null so
        # the interpreter's final flush cannot raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)  # policies.runner.TrainingStopped says which; Ctrl-C: SIGINT
        print(f"s2r {args.command}: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum
    except Exception as exc:
        if not is_user_error(exc):
            traceback.print_exc()
            print(f"s2r {args.command}: internal error ({type(exc).__name__}): this is a bug in s2r {__version__}, "
                  "not in your input; please report it with the traceback above and the command line",
                  file=sys.stderr)  # fmt: skip
            return 1
        if os.environ.get("S2R_DEBUG"):
            raise
        print(f"s2r {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 1


# the environment's errors a user fixes (a path, a permission, a port, a full disk), not bugs; a plain OSError
# is what pyserial's SerialException and termios errors are
USER_OS_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError,
                  ConnectionError, TimeoutError)  # fmt: skip


def is_user_error(exc: BaseException) -> bool:
    """A mistake in the input or the environment (one line), as opposed to a bug in s2r (a traceback)."""
    if isinstance(exc, (UserError, *USER_OS_ERRORS)):
        return True
    # pyserial's SerialException (an OSError), ENOSPC/EIO/ENXIO from a disk or a port
    return type(exc) is OSError or type(exc).__module__.startswith(("serial", "termios"))


def one_line(exc: BaseException) -> str:
    """The first line of an error message, with the file name an OSError carries."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror and str(exc.filename) not in str(exc.strerror):
        return f"{exc.strerror}: {exc.filename}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
