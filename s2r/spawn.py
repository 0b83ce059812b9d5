"""Command lines that start ``s2r emulate`` (the board) and ``s2r run`` (the controller) as child processes, for
HIL, written from the config dataclasses those commands' flags are generated from (``EmulatorConfig``,
``RuntimeConfig``) by :func:`s2r.flags.to_argv`: a field and its flag cannot drift apart, and a field without a
flag holding anything but its default is a TypeError, never silently dropped. ``tests/s2r/test_spawn.py`` parses
every command line with the command's own parser and checks that it gives back the same config.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from s2r.flags import to_argv

if TYPE_CHECKING:
    from deploy.runtime import RuntimeConfig
    from firmware_bridge.emulator import EmulatorConfig


def emulate_argv(cfg: EmulatorConfig, log: Path | None = None) -> list[str]:
    """``s2r emulate`` for this board; ``log``: its JSON-lines log of steps and events."""
    from s2r.commands.emulate import EmulateArgs

    return [sys.executable, "-m", "s2r", "emulate", *to_argv(cfg), *to_argv(EmulateArgs(log=None if log is None else str(log)))]


def run_argv(cfg: RuntimeConfig, bundle: str | Path) -> list[str]:
    """``s2r run`` of ``bundle`` with this config, printing its summary as JSON on stdout."""
    from s2r.commands.run import RunTarget

    return [sys.executable, "-m", "s2r", "run", *to_argv(cfg), *to_argv(RunTarget(bundle=str(bundle), json=True))]
