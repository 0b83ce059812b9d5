"""The command lines HIL starts its child processes with: parsed by the command's own parser they give back the
config they were written from; a field without a flag cannot be passed silently."""

from __future__ import annotations

import sys

import pytest

from deploy.runtime import RuntimeConfig
from firmware_bridge.emulator import EmulatorConfig
from s2r.cli import build_parser
from s2r.commands.emulate import EmulateArgs
from s2r.commands.run import RunTarget
from s2r.flags import from_args
from s2r.spawn import emulate_argv, run_argv


def _parse(argv: list[str], *classes: type) -> list:
    """Parse with the real `s2r COMMAND` parser (an unknown flag or bad value exits 2 and fails the test)."""
    assert argv[:3] == [sys.executable, "-m", "s2r"]
    ns = build_parser(argv[3]).parse_args(argv[3:])
    assert ns.command == argv[3]
    return [from_args(cls, ns) for cls in classes]


def test_emulate_command_line_parses_back_to_its_config(tmp_path):
    cfg = EmulatorConfig(env="knob", plant="heavy_knob", seed=7, lockstep=True, watchdog_ms=250, ramp_ms=40.0)
    back, args = _parse(emulate_argv(cfg, log=tmp_path / "emu.jsonl"), EmulatorConfig, EmulateArgs)
    assert back == cfg and args.log == str(tmp_path / "emu.jsonl")
    default, args = _parse(emulate_argv(EmulatorConfig()), EmulatorConfig, EmulateArgs)
    assert default == EmulatorConfig() and args.log is None


def test_run_command_line_parses_back_to_its_config(tmp_path):
    cfg = RuntimeConfig(port="/dev/pts/9", baud=115_200, watchdog_ms=250.0, max_steps=30, duration_s=2.5,
                        telemetry=tmp_path / "t.csv", handshake_timeout_s=3.0, quiet=True, ramp_ms=250.0,
                        fault_frames=5)  # fmt: skip
    back, target = _parse(run_argv(cfg, tmp_path / "bundle"), RuntimeConfig, RunTarget)
    assert back == cfg and target == RunTarget(bundle=str(tmp_path / "bundle"), json=True)
    default = RuntimeConfig(port="loop://")
    back, _ = _parse(run_argv(default, "b"), RuntimeConfig, RunTarget)
    assert back == default and back.ramp_ms is None  # the controller picks the ramp from the board's mode


def test_a_field_without_a_flag_cannot_be_passed_silently():
    with pytest.raises(TypeError, match="no flag can give RuntimeConfig.status_period_s=5.0"):
        run_argv(RuntimeConfig(port="loop://", status_period_s=5.0), "b")
    with pytest.raises(TypeError, match="no flag can give EmulatorConfig.fw_version"):
        emulate_argv(EmulatorConfig(fw_version=(9, 9, 9)))
