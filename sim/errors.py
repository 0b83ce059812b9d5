"""The project's error type for mistakes in a user's input or environment (stdlib only; every stage raises it).

``s2r``'s command line prints a :class:`UserError` as one line naming the problem and the fix, and exits 1.
Anything else that escapes a command is a bug in s2r: it shows its traceback and asks to be reported.
``UserError`` subclasses ``ValueError`` so that code catching ``ValueError`` around a parse keeps working.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input (a flag, a file, a store, a run folder...) that the user can fix; the message says how."""


def require_positive(name: str, value: float, allow_zero: bool = False) -> None:
    """Refuse a count or duration below 1 (or below 0 with ``allow_zero``), naming the flag, e.g. ``--steps``."""
    low_ok = value >= 0 if allow_zero else value > 0
    if not low_ok or value != value:  # NaN compares false both ways
        raise UserError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
