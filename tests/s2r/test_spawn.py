"""The command lines HIL starts its child processes with: every flag exists in the command's own parser and
parses back to the config field it came from; every config field is mapped or explicitly flagless."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from deploy.runtime import RuntimeConfig
from firmware_bridge.emulator import EmulatorConfig
from s2r.cli import build_parser
from s2r.spawn import EMULATE_FLAGLESS, EMULATE_FLAGS, RUN_FLAGLESS, RUN_FLAGS, emulate_argv, run_argv


def _parse(argv: list[str]) -> argparse.Namespace:
    """Parse with the real `s2r COMMAND` parser: an unknown flag or bad value exits 2 and fails the test."""
    assert argv[:3] == [sys.executable, "-m", "s2r"]
    return build_parser(argv[3]).parse_args(argv[3:])


@pytest.mark.parametrize(
    ("config", "table", "flagless"),
    [(EmulatorConfig, EMULATE_FLAGS, EMULATE_FLAGLESS), (RuntimeConfig, RUN_FLAGS, RUN_FLAGLESS)],
)
def test_every_config_field_is_mapped_or_flagless(config, table, flagless):
    assert {f.name for f in fields(config)} == set(table) | flagless
    assert not set(table) & flagless


def test_emulate_command_line_parses_back_to_its_config(tmp_path):
    cfg = EmulatorConfig(env="knob", plant="heavy_knob", seed=7, lockstep=True, watchdog_ms=250, ramp_ms=40.0)
    ns = _parse(emulate_argv(cfg, log=tmp_path / "emu.jsonl"))
    assert (ns.command, ns.robot, ns.plant, ns.seed, ns.lockstep, ns.watchdog_ms, ns.ramp_ms, ns.log) == (
        "emulate", "knob", "heavy_knob", 7, True, 250, 40.0, str(tmp_path / "emu.jsonl"),
    )  # fmt: skip
    default = _parse(emulate_argv(EmulatorConfig()))
    assert (default.robot, default.lockstep, default.log) == (EmulatorConfig.env, False, None)


def test_run_command_line_parses_back_to_its_config(tmp_path):
    cfg = RuntimeConfig(port="/dev/pts/9", baud=115_200, watchdog_s=0.25, max_steps=30, duration_s=2.5,
                        telemetry=tmp_path / "t.csv", handshake_timeout_s=3.0, quiet=True, ramp_s=0.25,
                        fault_frames=5)  # fmt: skip
    ns = _parse(run_argv(cfg, tmp_path / "bundle"))
    assert ns.command == "run" and ns.bundle == str(tmp_path / "bundle") and ns.json
    assert (ns.port, ns.baud, ns.watchdog_ms * 1e-3) == ("/dev/pts/9", 115_200, 0.25)
    assert (ns.max_steps, ns.duration) == (30, 2.5)
    assert (Path(ns.telemetry), ns.handshake_timeout, ns.quiet) == (cfg.telemetry, 3.0, True)
    assert (ns.ramp_ms * 1e-3, ns.fault_frames) == (0.25, 5)
    default = _parse(run_argv(RuntimeConfig(port="loop://"), "b"))
    assert default.max_steps is None and default.duration is None and default.telemetry is None
    assert default.ramp_ms is None  # the controller picks the ramp from the board's mode
    assert not default.quiet


def test_a_field_without_a_flag_cannot_be_passed_silently():
    with pytest.raises(TypeError, match="no flag for RuntimeConfig.status_period_s"):
        run_argv(RuntimeConfig(port="loop://", status_period_s=5.0), "b")
