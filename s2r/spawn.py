"""Command lines that start ``s2r emulate`` (the board) and ``s2r run`` (the controller) as child processes, for
HIL, built from the config dataclasses those commands fill (``EmulatorConfig``, ``RuntimeConfig``).

Each table maps a config field to its flag, the one place that knows both names; the ``*_FLAGLESS`` sets name
the fields that deliberately have none. ``tests/s2r/test_spawn.py`` parses every command line with the
command's own parser and checks that every field is mapped or flagless, so renaming a flag or adding a field
breaks a test, not a HIL run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deploy.runtime import RuntimeConfig
    from firmware_bridge.emulator import EmulatorConfig

Flag = tuple[str, Callable[[Any], str] | None]  # (flag, field value → argument text); None: a switch


def _seconds_as_ms(seconds: float) -> str:
    return repr(seconds * 1e3)


# EmulatorConfig field → `s2r emulate` flag
EMULATE_FLAGS: dict[str, Flag] = {
    "env": ("--robot", str),
    "plant": ("--plant", str),
    "seed": ("--seed", str),
    "lockstep": ("--lockstep", None),
    "watchdog_ms": ("--watchdog-ms", str),
    "engine": ("--engine", str),
    "ramp_ms": ("--ramp-ms", repr),
}
EMULATE_FLAGLESS = frozenset({"fw_version"})  # fixed by the emulated firmware, not chosen per run

# RuntimeConfig field → `s2r run` flag
RUN_FLAGS: dict[str, Flag] = {
    "port": ("--port", str),
    "baud": ("--baud", str),
    "watchdog_s": ("--watchdog-ms", _seconds_as_ms),
    "max_steps": ("--max-steps", str),
    "duration_s": ("--duration", repr),
    "telemetry": ("--telemetry", str),
    "handshake_timeout_s": ("--handshake-timeout", repr),
    "quiet": ("--quiet", None),
    "ramp_s": ("--ramp-ms", _seconds_as_ms),
    "fault_frames": ("--fault-frames", str),
}
RUN_FLAGLESS = frozenset({"status_period_s"})  # only matters with status lines, which HIL turns off


def _argv(command: str, cfg: Any, table: Mapping[str, Flag]) -> list[str]:
    """``python -m s2r COMMAND`` with one flag per mapped field that is not "off" (None or False). A field
    without a flag may only hold its default, which the child's config then has too; any other value is a bug
    (TypeError), never silently dropped."""
    argv = [sys.executable, "-m", "s2r", command]
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if f.name not in table:
            if value != f.default:
                raise TypeError(f"`s2r {command}` has no flag for {type(cfg).__name__}.{f.name}={value!r}")
            continue
        flag, text = table[f.name]
        if value is None or value is False:
            continue
        argv += [flag] if text is None else [flag, text(value)]
    return argv


def emulate_argv(cfg: EmulatorConfig, log: Path | None = None) -> list[str]:
    """``s2r emulate`` for this board; ``log``: its JSON-lines log of steps and events."""
    argv = _argv("emulate", cfg, EMULATE_FLAGS)
    return [*argv, "--log", str(log)] if log is not None else argv


def run_argv(cfg: RuntimeConfig, bundle: str | Path) -> list[str]:
    """``s2r run`` of ``bundle`` with this config, printing its summary as JSON on stdout."""
    return [*_argv("run", cfg, RUN_FLAGS), "--bundle", str(bundle), "--json"]
