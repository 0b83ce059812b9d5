"""Actuation-cost reward terms shared by the robots' task rewards, and the reading of reward-weight configs.

Each robot's reward weights are a frozen dataclass in its env module (``sim.biped.BipedReward``,
``sim.knob.KnobReward``) that extends :class:`ActuationWeights` with its own task terms. The actuation terms all
default to 0, which is exactly the reward the envs had before they existed: with the defaults no term is computed,
``info["reward_terms"]`` keeps its keys and seeded episodes stay bit-identical. A training turns them on with a
preset (``REWARD_PRESETS`` of the env module, e.g. ``smooth``) or a JSON file of field values (``s2r train
--env-options '{"reward": "smooth"}'``); legged_gym's ``action_rate``, ``torques`` and ``dof_acc`` scales were
the reference, scaled to these robots' per-step task rewards.

Terms (each a reward per control step, ≤ 0; ``a`` = the normalized command in [-1, 1] the motors received,
τ = torque, q̇ = joint speed):

    ===========  ========================================  =================================================
    term         quantity                                  weight field (unit of the weight)
    ===========  ========================================  =================================================
    action_rate  Σ (a_t − a_{t−1})²                        ``action_rate`` (reward per unit², per step)
    torque_sq    Σ a²  (= Σ (τ_cmd / τ_limit)²)            ``torque_sq`` (reward per unit², per step)
    power        Σ |τ_applied · q̇|, W                      ``power_per_w`` (reward per W, per step)
    at_limit     number of motors with |a| ≥ 0.99          ``at_limit`` (reward per motor, per step)
    action_acc   Σ (a_t − 2a_{t−1} + a_{t−2})²             ``action_accel`` (reward per unit², per step)
    near_limit   Σ (max(|a| − f, 0) / (1 − f))²            ``near_limit`` (reward per motor at the limit,
                 with f = ``near_limit_from``              per step)
    ===========  ========================================  =================================================

``a_{t−1}`` and ``a_{t−2}`` are 0 at an episode's first step (the motors were off). ``action_acc`` is
humanoid-gym's action smoothness: the second difference of the command. For a command oscillating at f it grows
as (2 sin(π f Δt))⁴, against (2 sin(π f Δt))² for ``action_rate``, so it charges a fast stride or chatter far more
than a slow stride of the same amplitude. Its key is in the terms only when its weight is > 0.

``near_limit`` is legged_gym's ``torque_limits`` (a cost on the torque above a soft share of the limit), squared
so that it is smooth: 0 up to ``near_limit_from`` of the limit, 1 per motor at the limit. ``at_limit`` counts
motors at the limit but gives a policy no slope towards leaving it; this term does, from well inside the limit.
Its key is in the terms only when its weight is > 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sim.errors import UserError
from sim.files import read_json

AT_LIMIT = 0.99  # |a| at or above this share of the limit counts as "at the limit" (as domain_rand.stress)


@dataclass(frozen=True)
class ActuationWeights:
    """Weights of the actuation-cost terms (module docstring); each ≥ 0 and subtracted. All 0: off."""

    action_rate: float = 0.0  # reward per unit of Σ (a_t − a_{t−1})² per control step (a: normalized command)
    torque_sq: float = 0.0  # reward per unit of Σ (τ_cmd / τ_limit)² per control step
    power_per_w: float = 0.0  # reward per W of mechanical power Σ |τ_applied · q̇| per control step
    at_limit: float = 0.0  # reward per motor commanded at ≥ 99 % of its torque limit, per control step
    action_accel: float = 0.0  # reward per unit of Σ (a_t − 2a_{t−1} + a_{t−2})² per control step
    near_limit: float = 0.0  # reward per motor at its torque limit, charged quadratically from near_limit_from
    near_limit_from: float = 0.8  # share of the torque limit above which near_limit charges (not a weight)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise UserError(
                    f"reward weight '{f.name}' must be a number >= 0 (it is subtracted), got {value!r}"
                )
        if not self.near_limit_from < 1:
            raise UserError(
                f"near_limit_from must be a share of the torque limit below 1, got {self.near_limit_from!r}"
            )

    @property
    def actuation_on(self) -> bool:
        """Whether any actuation term is weighted (the env computes them only then)."""
        return any((self.action_rate, self.torque_sq, self.power_per_w, self.at_limit, self.action_accel,
                    self.near_limit))


def actuation_terms(
    w: ActuationWeights,
    a: Sequence[float],
    a_prev: Sequence[float],
    applied_nm: Sequence[float],
    speed_rad_s: Sequence[float],
    a_prev2: Sequence[float] | None = None,
) -> dict[str, float]:
    """The actuation terms (≤ 0) of one control step; a pure function of plain numbers (``a_prev2`` None: 0)."""
    rate = sum((x - y) ** 2 for x, y in zip(a, a_prev, strict=True))
    sq = sum(x * x for x in a)
    power_w = sum(abs(t * v) for t, v in zip(applied_nm, speed_rad_s, strict=True))
    at_limit = sum(1 for x in a if abs(x) >= AT_LIMIT)
    terms = {
        "action_rate": -w.action_rate * rate,
        "torque_sq": -w.torque_sq * sq,
        "power": -w.power_per_w * power_w,
        "at_limit": -w.at_limit * at_limit,
    }
    if w.action_accel > 0:
        prev2 = [0.0] * len(a) if a_prev2 is None else a_prev2
        acc = sum((x - 2 * y + z) ** 2 for x, y, z in zip(a, a_prev, prev2, strict=True))
        terms["action_acc"] = -w.action_accel * acc
    if w.near_limit > 0:
        f = w.near_limit_from
        terms["near_limit"] = -w.near_limit * sum((max(abs(x) - f, 0.0) / (1 - f)) ** 2 for x in a)
    return terms


W = TypeVar("W", bound=ActuationWeights)


def reward_weights(cls: type[W], value: Any, presets: Mapping[str, W]) -> W:
    """The reward weights ``value`` names: None → the defaults; an instance; a preset name of ``presets``; a JSON
    file of field values; or a mapping of field values (unknown fields: one-line error naming the fields)."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        if value in presets:
            return presets[value]
        path = Path(value)
        if not path.is_file():
            raise UserError(f"reward '{value}' is neither a preset ({', '.join(presets)}) nor a JSON file")
        value = read_json(path, "reward file")
    if not isinstance(value, Mapping):
        raise UserError(
            f"reward weights must be a preset name, a JSON file or an object of fields, got {value!r}"
        )
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise UserError(f"unknown {cls.__name__} fields {unknown}; the fields are {', '.join(names)}")
    return cls(**value)
