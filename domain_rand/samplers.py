"""Parameter ranges and the pure samplers that draw physical parameters from them.

A *range table* maps parameter names to ``(low, high)`` in the parameter's own unit, e.g.
``{"ground_friction": (0.5, 1.25), "action_latency": (0.0, 0.04)}``. Parameters not in the table stay at
their nominal value (the env fills them in). Samplers are pure functions of ``(space, ranges, rng)``: the
same generator state gives the same draw, which is what makes fixed DR and ADR reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from sim.errors import UserError
from sim.params import ParamSpace

Ranges = dict[str, tuple[float, float]]


def check_ranges(space: ParamSpace, ranges: Mapping[str, object], what: str) -> Ranges:
    """Validate a range table against a parameter space and return it as ``{name: (low, high)}`` floats.

    Accepts ``[low, high]`` pairs or a single number (a fixed value, ``low == high``). Raises ValueError on an
    unknown name, a non-numeric or inverted range, or a bound outside the parameter's hard limits; ``what``
    names the source (a preset or file) so the one-line error says where to fix it.
    """
    out: Ranges = {}
    for name, value in ranges.items():
        if name not in space:
            raise UserError(
                f"{what}: unknown parameter '{name}' for {space.robot_id}; known: {', '.join(space.names)}"
            )
        p = space[name]
        pair = value if isinstance(value, (list, tuple)) else (value, value)
        try:
            low, high = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise UserError(
                f"{what}: '{name}' must be a number or [low, high] in {p.unit}, got {value!r}"
            ) from None
        if not (math.isfinite(low) and math.isfinite(high)):
            raise UserError(f"{what}: '{name}' range [{low}, {high}] is not finite")
        if low > high:
            raise UserError(f"{what}: '{name}' range is inverted: low {low:g} > high {high:g} {p.unit}")
        if low < p.low or high > p.high:
            raise UserError(
                f"{what}: '{name}' range [{low:g}, {high:g}] {p.unit} leaves the hard limits "
                f"[{p.low:g}, {p.high:g}] {p.unit}"
            )
        out[name] = (low, high)
    return out


def sample_value(low: float, high: float, log_scale: bool, rng: np.random.Generator) -> float:
    """One draw in ``[low, high]``: log-uniform for scale factors (``log_scale``), uniform otherwise."""
    if high <= low:
        return float(low)  # degenerate range: no draw, so the RNG stream does not depend on unused widths
    if log_scale:
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return float(rng.uniform(low, high))


def sample_ranges(
    space: ParamSpace, ranges: Mapping[str, tuple[float, float]], rng: np.random.Generator
) -> dict[str, float]:
    """Draw every parameter of ``ranges`` independently (in the space's order, so draws are reproducible)."""
    return {
        p.name: sample_value(ranges[p.name][0], ranges[p.name][1], p.log_scale, rng)
        for p in space
        if p.name in ranges
    }


def rng_state(rng: np.random.Generator) -> dict:
    """A generator's state as plain dicts and ints (loads with ``torch.load(weights_only=True)`` and JSON)."""
    return dict(rng.bit_generator.state)


def rng_from_state(state: dict) -> np.random.Generator:
    """Rebuild a generator from :func:`rng_state`."""
    bit_gen = getattr(np.random, state["bit_generator"])()
    bit_gen.state = state
    return np.random.Generator(bit_gen)
