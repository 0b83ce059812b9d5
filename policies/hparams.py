"""Hyper-parameter files: the presets shipped in ``policies/presets/*.yaml`` and the files of
``s2r train --config FILE`` (YAML, JSON or, on Python ≥ 3.11 or with ``tomli``, TOML).

A file only fills the same frozen dataclasses the command-line flags fill, in the layout of a run's
``config.json`` (which is therefore a valid file too)::

    env: knob            # TrainConfig fields at the top level
    algo: ppo
    steps: 400000
    algo_config:         # TD3Config / PPOConfig fields; any left out keep the (env, algo) preset's value
      lr: 1.0e-4
      hidden: [128, 128]

This module knows no dataclass of its own (``policies.ppo`` and ``policies.td3`` read their presets through it),
so it imports nothing from the learners.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sim.errors import UserError

PRESET_DIR = Path(__file__).with_name("presets")


def read_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML (.yaml/.yml), JSON (.json) or TOML (.toml) file; a UserError names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = _toml().loads(text)
        else:
            raise UserError(f"config file {path}: unknown suffix '{path.suffix}'; use .yaml, .yml, .json or .toml")
    except UserError:
        raise
    except Exception as exc:  # the parsers' own error types (yaml.YAMLError, tomllib.TOMLDecodeError)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"config file {path} is not valid {suffix[1:].upper()}: {first}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of field: value, not a {type(data).__name__}")
    return data


def _toml() -> Any:
    try:
        import tomllib  # Python >= 3.11

        return tomllib
    except ImportError:
        try:
            import tomli

            return tomli
        except ImportError:
            raise UserError("TOML config files need Python >= 3.11 or `pip install tomli`; or use YAML") from None


def parse_value(value: Any, default: Any, type_hint: str) -> Any:
    """A value from a flag (text) or a file (YAML/JSON types) → the field's type: tuples from ``400,300`` or a
    list, bools from true/false, optional fields from none/null, numbers from text such as ``3e-4``."""
    optional = "None" in type_hint
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise UserError("must not be empty (none)")
    if "tuple" in type_hint:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise UserError(f"expected a list of integers, got {value!r}")
        if "str" in type_hint:  # names, or integers written as before names
            return tuple(int(v) if isinstance(v, int) or str(v).lstrip("-").isdigit() else str(v).strip()
                         for v in items if v != "")  # fmt: skip
        try:
            return tuple(int(v) for v in items if v != "")
        except (TypeError, ValueError):
            raise UserError(f"expected a list of integers, got {value!r}") from None
    if isinstance(default, bool) or type_hint == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() not in ("true", "false", "1", "0"):
            raise UserError(f"expected true or false, got '{value}'")
        return str(value).lower() in ("true", "1")
    if "str" in type_hint:
        if not isinstance(value, str):
            raise UserError(f"expected a name, got {value!r}")
        return value
    try:
        if "float" in type_hint:
            return float(value)
        if "int" in type_hint:
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
    except (TypeError, ValueError):
        raise UserError(f"expected a number, got {value!r}") from None
    return value


def build(cls: type, values: Mapping[str, Any], where: str, base: Any = None) -> Any:
    """``cls`` (a frozen dataclass) from ``values`` over ``base`` (default: ``cls()``); an unknown key is a one-line
    error naming it and the valid ones, a value of the wrong type one naming the key."""
    hints = {k: str(v) for k, v in typing.get_type_hints(cls).items()}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}' for {cls.__name__}; valid keys: {', '.join(fields)}")
    changes = {}
    for key, value in values.items():
        default = fields[key].default
        try:
            changes[key] = parse_value(value, default, hints[key])
        except ValueError as exc:
            raise UserError(f"{where}: {key}: {exc}") from None
    return dataclasses.replace(base if base is not None else cls(), **changes)


@functools.cache
def _preset_file(path: Path) -> dict[str, Any]:
    return read_file(path)


def preset_values(algo: str) -> dict[str, dict[str, Any]]:
    """``{Gymnasium env id: algo_config mapping}`` of the presets for ``algo`` (``td3``, ``ppo``, ``lstm-td3``):
    an s2r robot's from its Task record (:attr:`sim.task.EnvVariant.presets`: a file here or the mapping itself),
    any other Gymnasium env's (Pendulum, BipedalWalker) from the files in ``policies/presets/``."""
    from sim.task import env_variants

    robots = env_variants().values()
    robot_ids = {v.gym_id for v in robots}
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        data = _preset_file(path)
        if data.get("algo") == algo and str(data["env"]) not in robot_ids:
            out[str(data["env"])] = dict(data.get("algo_config") or {})
    for v in robots:
        preset = v.presets.get(algo)
        if isinstance(preset, str):
            data = _preset_file(PRESET_DIR / preset)
            if data.get("algo") != algo or data.get("env") not in (v.gym_id, v.name):
                raise UserError(f"preset file {preset} of {v.name} is for {data.get('env')} / {data.get('algo')}, "
                                f"not {v.gym_id} / {algo}")  # fmt: skip
            preset = data.get("algo_config") or {}
        if preset is not None:
            out[v.gym_id] = dict(preset)
    return out
