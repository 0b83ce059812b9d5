"""Flags generated from config dataclasses (s2r/flags.py, sim/config.py): for every command's configs,
dataclass → command line → parse gives back the same dataclass; every flag has its help; a value out of range is
a one-line error whether it comes from the command line or from a direct Python call."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from policies.lstm_td3 import LSTMTD3Config
from policies.ppo import PPOConfig
from policies.recurrent_ppo import RecurrentPPOConfig
from policies.td3 import TD3Config
from policies.train import TrainConfig
from s2r.cli import COMMANDS, build_parser, main
from s2r.flags import add_flags, from_args, to_argv
from s2r.flags import given as flags_given
from s2r.hil import FaultSpec
from sim.config import field_types, flag_of, spec_of
from sim.errors import UserError


def _configs() -> list[type]:
    out = [TrainConfig]  # `s2r train` adds it in extend() (defaults None: a --config file stays under the flags)
    for name in COMMANDS:
        out += importlib.import_module(f"s2r.commands.{name}").CONFIGS
    return out


CONFIGS = _configs()
# any text but "--", which argparse drops even from `--flag=--` (a known argparse limitation)
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00,"), max_size=12).filter(
    lambda t: t != "--"
)


def _number(kind: type, spec: Any) -> st.SearchStrategy:
    low = spec.low if spec.low is not None else spec.above if spec.above is not None else -1e6
    high = spec.high if spec.high is not None else 1e9
    if kind is int:
        return st.integers(int(low) + (spec.above is not None), int(high))
    return st.floats(low, high, allow_nan=False, allow_infinity=False, exclude_min=spec.above is not None)


def _strategy(f: dataclasses.Field, kind: type) -> st.SearchStrategy:
    spec = spec_of(f)
    assert spec is not None
    if kind is FaultSpec:
        unit, positive = st.floats(0, 1), st.floats(0, 1e3)
        base = st.builds(FaultSpec, unit, unit, positive, st.none() | positive, positive)
    elif spec.choices is not None:
        base = st.sampled_from(spec.choices)
    elif kind is bool:
        base = st.booleans()
    elif kind in (int, float):
        base = _number(kind, spec)
    elif kind is tuple:
        base = st.lists(TEXT.filter(bool), max_size=3).map(tuple)
    else:
        base = TEXT.map(Path) if kind is Path else TEXT
    return st.none() | base if f.default is None else base


@st.composite
def instances(draw: st.DrawFn, cls: type) -> Any:
    kinds = field_types(cls)
    values = {f.name: draw(_strategy(f, kinds[f.name])) for f in dataclasses.fields(cls)
              if (s := spec_of(f)) is not None and s.cli}  # fmt: skip
    try:
        return cls(**values)
    except UserError:  # a rule across fields (one of --store/--bundle...): not this test's subject
        reject()


def _parser(cls: type, optional: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_flags(parser, cls, optional)
    return parser


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_config_to_command_line_and_back(cls, data):
    cfg = data.draw(instances(cls))
    argv = to_argv(cfg)
    assert from_args(cls, _parser(cls).parse_args(argv)) == cfg, argv
    if cls is TrainConfig:  # the optional form: only the flags given replace the base config
        assert dataclasses.replace(TrainConfig(), **flags_given(cls, _parser(cls, True).parse_args(argv))) == cfg


@pytest.mark.parametrize("cls", [*CONFIGS, TD3Config, LSTMTD3Config, PPOConfig, RecurrentPPOConfig], ids=lambda c: c.__name__)
def test_every_flag_has_a_one_line_help_and_out_of_range_values_are_refused(cls):
    kinds = field_types(cls)
    for f in dataclasses.fields(cls):
        spec = spec_of(f)
        if spec is None:
            assert f.name == "algo_config", f"{cls.__name__}.{f.name} is not an option()"
            continue
        assert spec.help and "\n" not in spec.help, f"{cls.__name__}.{f.name} has no one-line help"
        bad = _out_of_range(spec, kinds[f.name])
        if bad is not None and f.default is not dataclasses.MISSING:
            with pytest.raises(UserError, match=f"^{flag_of(f)} must be"):
                cls(**{**_required(cls), f.name: bad})


def _out_of_range(spec: Any, kind: type) -> Any:
    if spec.choices is not None:
        return "no-such-choice"
    if kind not in (int, float):
        return None
    if spec.above is not None:
        return kind(spec.above)
    if spec.low is not None:
        return kind(spec.low - 1)
    return kind(spec.high + 1) if spec.high is not None else (math.nan if kind is float else None)


def _required(cls: type) -> dict[str, Any]:
    """Values for the fields without a default, and a valid combination where a class has a rule across fields."""
    out = {f.name: "x" for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
    extra = {"FlashArgs": {"status": True}, "RunTarget": {"bundle": "b"}, "ExportConfig": {"out": "o"}}
    return {**out, **extra.get(cls.__name__, {})}


@pytest.mark.parametrize("cmd", [None, *COMMANDS])
def test_every_command_builds_its_parser_and_help(cmd, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser(cmd).parse_args([cmd, "--help"] if cmd else ["--help"])
    assert exit_.value.code == 0 and f"usage: s2r {cmd or ''}".strip() in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["rollout", "--episodes", "x"], 2, "argument --episodes: invalid int value: 'x'"),
        (["emulate", "--engine", "bullet"], 2, "argument --engine: invalid choice: 'bullet'"),
        (["run", "--port", "loop://", "--bundle", "b", "--watchdog-ms", "0"], 1, "--watchdog-ms must be in 1..60000"),
        (["run", "--port", "loop://", "--ramp-ms", "nan", "--bundle", "b"], 1, "--ramp-ms must be a finite number"),
        (["run", "--port", "loop://"], 1, "give one of --store DIR"),
        (["emulate", "--watchdog-ms", "70000"], 1, "--watchdog-ms must be in 1..65535, got 70000"),
        (["export", "run", "-o", "b", "--n-random", "5"], 1, "--n-random must be >= 10000, got 5; the parity"),
        (["stress", "b", "--workers", "-1"], 1, "--workers must be >= 0, got -1"),
        (["train", "--torch-threads", "0"], 1, "--torch-threads must be > 0, got 0"),
        (["train", "--algo", "td3", "--td3-gamma", "1.5"], 1, "--td3-gamma must be in 0..1, got 1.5"),
        (["train", "--algo", "ppo", "--ppo-activation", "gelu"], 1, "--ppo-activation must be one of relu, tanh"),
    ],
)
def test_bad_values_are_one_line_errors(argv, code, needle, capsys):
    try:
        got = main(argv)
    except SystemExit as exc:  # argparse: exit 2
        got = exc.code
    err = capsys.readouterr().err
    assert got == code and needle in err and err.strip().count("\n") == 0, err


def test_a_direct_python_call_is_checked_like_the_command_line():
    from deploy.runtime import RuntimeConfig
    from s2r.demo import DemoConfig

    with pytest.raises(UserError, match="--watchdog-ms must be in 1..60000, got 0"):
        RuntimeConfig(port="loop://", watchdog_ms=0)
    with pytest.raises(UserError, match="--steps must be in 1..100000, got 0; for longer runs use `s2r hil"):
        DemoConfig(steps=0)
    with pytest.raises(UserError, match="--seed must be a whole number, got 1.5"):
        TrainConfig(seed=1.5)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_hil_child_command_lines_parse_back_with_the_commands_own_parsers(data):
    """Any EmulatorConfig / RuntimeConfig HIL may start a child with comes back whole from `s2r emulate` /
    `s2r run`'s real parser (s2r/spawn.py writes the command lines with the generator the parsers come from)."""
    from deploy.runtime import RuntimeConfig
    from firmware_bridge.emulator import EmulatorConfig
    from s2r.spawn import emulate_argv, run_argv

    for cls, argv in ((EmulatorConfig, emulate_argv), (RuntimeConfig, lambda c: run_argv(c, "bundle"))):
        cfg = data.draw(instances(cls))
        command = argv(cfg)[3:]
        assert from_args(cls, build_parser(command[0]).parse_args(command)) == cfg, command
