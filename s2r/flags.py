"""Command-line flags generated from config dataclasses (their fields made with :func:`sim.config.option`).

``add_flags`` adds one argparse argument per field: the flag, type, default, choices and help all come from the
field. ``from_args`` builds the dataclass back from the parsed namespace (its ``__post_init__`` validates), and
``to_argv`` writes a config as the command line that parses back to it: HIL starts its child processes with it,
so a renamed field renames its flag on both sides at once. Types: bool (a switch; ``--no-NAME`` for a field
that defaults to true), int, float, str, Path, comma lists (``tuple[str, ...]``), and ``X | None``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from sim.config import field_types, flag_of, spec_of


def _fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` that have a flag."""
    return [f for f in dataclasses.fields(cls) if (s := spec_of(f)) is not None and s.cli]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def show(value: Any) -> str:
    """A value as it is typed on the command line."""
    if isinstance(value, tuple):
        return ",".join(show(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def _help(f: dataclasses.Field, kind: type) -> str:
    spec, default = spec_of(f), _default(f)
    assert spec is not None
    text = spec.help
    hidden = default is None or default is dataclasses.MISSING or default == () or kind is bool or spec.show
    if not hidden and "default" not in text:
        text += f" (default {f'{default:g}' if isinstance(default, float) else show(default)})"
    return text.replace("%", "%%")  # argparse %-formats help


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(t for t in text.split(",") if t)


CONVERTERS: dict[type, Any] = {tuple: _comma_list, Path: str}  # flag text → value, where not the type itself


def _argument(f: dataclasses.Field, kind: type, optional: bool) -> tuple[list[str], dict[str, Any]]:
    """(option strings, argparse keywords) of one field."""
    spec, default = spec_of(f), _default(f)
    assert spec is not None
    required = default is dataclasses.MISSING
    kw: dict[str, Any] = {"help": _help(f, kind), "default": None if optional or required else default}
    if spec.positional:
        kw["nargs"] = "*" if kind is tuple else None if required else "?"
        return [f.name], {**kw, "metavar": spec.metavar or f.name.upper()}
    flag, kw["dest"] = flag_of(f), f.name
    if kind is bool:
        names = ["--no-" + flag[2:]] if default is True else [flag]
        return names, {**kw, "action": "store_false" if default is True else "store_true"}
    if required:
        kw["required"] = True
    if spec.const is not None:
        kw.update(nargs="?", const=spec.const)
    parse: Any = str if spec.parse else CONVERTERS.get(kind, kind)  # spec.parse: in given()
    metavar = spec.metavar or (None if spec.choices else flag[2:].replace("-", "_").upper())  # choices: {a,b}
    kw.update(type=parse, choices=spec.choices, metavar=metavar)
    short = [a for a in spec.aliases if not a.startswith("--")]  # -o first, --video after --gif
    return [*short, flag, *(a for a in spec.aliases if a not in short)], kw


def add_flags(parser: argparse.ArgumentParser | Any, cls: type, optional: bool = False) -> None:
    """One argument per field of ``cls`` that has a flag. ``optional``: every default is None, so a flag not
    given can be told from one given (``s2r train`` layers a --config file under the flags)."""
    kinds = field_types(cls)
    for f in _fields(cls):
        names, kw = _argument(f, kinds[f.name], optional)
        parser.add_argument(*names, **kw)


def given(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The field values of ``cls`` that the namespace holds (parsed by its own type; None: not given)."""
    kinds, out = field_types(cls), {}
    for f in _fields(cls):
        value, spec = getattr(args, f.name, None), spec_of(f)
        assert spec is not None
        if isinstance(value, list):  # nargs="*"
            value = tuple(value)
        if isinstance(value, str) and spec.parse is not None:
            value = spec.parse(value)
        elif isinstance(value, str) and kinds[f.name] is Path:
            value = Path(value)
        if value is not None:
            out[f.name] = value
    return out


def from_args(cls: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """The config ``cls`` the flags describe (``fixed``: fields the command sets itself)."""
    return cls(**{**given(cls, args), **fixed})


def to_argv(cfg: Any) -> list[str]:
    """The flags that parse back to ``cfg`` (positional arguments last). A field without a flag may only hold
    its default (the parsed config then has it too); any other value is a bug (TypeError), never dropped."""
    opts, positional = [], []
    for f in dataclasses.fields(cfg):
        value, spec, default = getattr(cfg, f.name), spec_of(f), _default(f)
        if spec is None or not spec.cli or value is None:
            if value != default:
                raise TypeError(f"no flag can give {type(cfg).__name__}.{f.name}={value!r}")
        elif isinstance(value, bool):
            if value != default:  # a switch: --lockstep, --no-plots
                opts += _argument(f, bool, False)[0]
        elif spec.positional:
            positional += [show(v) for v in value] if isinstance(value, tuple) else [show(value)]
        else:
            opts.append(f"{flag_of(f)}={spec.show(value) if spec.show else show(value)}")
    if any(p.startswith("-") for p in positional):
        positional.insert(0, "--")
    return [*opts, *positional]
