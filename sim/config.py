"""Config dataclasses as the single spec of their command-line flags (stdlib only: every stage uses it).

A field made with :func:`option` carries its default, its one-line help (with the unit) and its valid values;
its type comes from the annotation. ``validate(self)`` in a frozen config's ``__post_init__`` checks every such
field, so a direct Python call (the demo, HIL, a benchmark) is refused exactly like the command line, with a
one-line :class:`~sim.errors.UserError` that names the flag. ``s2r/flags.py`` turns the same fields into
argparse flags and back into command lines (HIL's child processes), so a field and its flag cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING
from typing import Any

from sim.errors import UserError

KEY = "s2r"  # the metadata key of an option field


@dataclasses.dataclass(frozen=True)
class Option:
    """What a config field is on the command line and which values it accepts."""

    help: str = ""  # one line, with the unit of a physical quantity
    flag: str | None = None  # the long flag; default --field-name
    above: float | None = None  # the value must be > above
    low: float | None = None  # ... >= low
    high: float | None = None  # ... <= high
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    positional: bool = False
    aliases: tuple[str, ...] = ()  # more option strings: -o, --video
    const: str | None = None  # the flag given without a value means this (argparse nargs="?")
    cli: bool = True  # False: no flag (a command line then refuses any value but the default)
    parse: Callable[[str], Any] | None = None  # flag text → value, where the type alone does not say how
    show: Callable[[Any], str] | None = None  # value → flag text (the inverse of parse)
    hint: str = ""  # appended to a range error: how to get what the user wanted


def option(default: Any = MISSING, help: str = "", *, factory: Any = MISSING, **spec: Any) -> Any:
    """A dataclass field with its flag spec (keywords: those of :class:`Option`)."""
    meta = {KEY: Option(help=help, **spec)}
    if factory is not MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def spec_of(f: dataclasses.Field) -> Option | None:
    return f.metadata.get(KEY)


def flag_of(f: dataclasses.Field) -> str:
    """The flag of a field (``--max-steps``), or its name for a positional argument."""
    spec = spec_of(f)
    if spec is not None and spec.positional:
        return f.name
    return (spec.flag if spec is not None and spec.flag else None) or "--" + f.name.replace("_", "-")


@functools.cache
def field_types(cls: type) -> dict[str, type]:
    """Field name → its base type (``int | None`` → int, ``tuple[str, ...]`` → tuple)."""
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        base = args[0] if union and len(args) == 1 else hint
        out[name] = typing.get_origin(base) or base
    return out


def validate(cfg: Any) -> None:
    """Check every option field of a config instance (call it from ``__post_init__``)."""
    cls: type = type(cfg)
    kinds = field_types(cls)
    for f in dataclasses.fields(cfg):
        spec = spec_of(f)
        value = getattr(cfg, f.name)
        if spec is None or (value is None and f.default is None):  # None: off / automatic
            continue
        check_value(flag_of(f), spec, kinds[f.name], value)


def check_value(name: str, spec: Option, kind: type, value: Any) -> None:
    """One-line UserError unless ``value`` is of ``kind`` and within the spec's choices and range."""
    if kind is bool and not isinstance(value, bool):
        raise UserError(f"{name} must be true or false, got {value!r}")
    if kind in (int, float) and not _is_number(value, kind):
        whole = "a whole number" if kind is int else "a finite number"
        raise UserError(f"{name} must be {whole}, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise UserError(f"{name} must be one of {', '.join(spec.choices)}, got {value!r}")
    if not in_range(spec, value):
        hint = f"; {spec.hint}" if spec.hint else ""
        raise UserError(f"{name} must be {range_text(spec)}, got {value!r}{hint}")


def _is_number(value: Any, kind: type) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) if kind is int else math.isfinite(value)


def in_range(spec: Option, value: float) -> bool:
    return not (
        (spec.above is not None and not value > spec.above)
        or (spec.low is not None and not value >= spec.low)
        or (spec.high is not None and not value <= spec.high)
    )


def range_text(spec: Option) -> str:
    """``> 0``, ``>= 0``, ``in 1..65535``: the valid range as an error message says it."""
    if spec.low is not None and spec.high is not None:
        return f"in {spec.low:g}..{spec.high:g}"
    parts = [f"> {spec.above:g}" if spec.above is not None else "", f">= {spec.low:g}" if spec.low is not None else ""]
    parts.append(f"<= {spec.high:g}" if spec.high is not None else "")
    return " and ".join(p for p in parts if p)
