"""Sensor effects shared by every robot: encoder quantization with the board's speed estimate, sensor delay,
lidar spurious returns.

Pure Python/numpy and engine-independent: the envs call these on their raw readings before building the
:class:`sim.spec.SensorFrame`, so the firmware emulator (which serves ``env.sensor_frame()``) reports exactly what
the policy saw in training. Each effect is a named physical parameter that is exactly inactive at its nominal
value; random draws come from a generator the env derives from its ``np_random`` without advancing it (so the
existing draws keep their order when an effect is switched on, and sweeps keep common random numbers).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class Encoder:
    """Incremental joint encoders of ``counts_per_rev`` counts: the angle reads as whole counts, and the joint
    speed is what a motor board computes from them — the difference of two successive readings over the
    nominal control period (``period_s``), so it is quantized too (one count per period at 4096 counts/rev
    and 50 Hz is 0.077 rad/s)."""

    def __init__(self, counts_per_rev: float, period_s: float) -> None:
        self.rad_per_count = 2.0 * math.pi / counts_per_rev
        self.period_s = period_s
        self._prev: list[float] | None = None

    def read(self, angle_rad: list[float]) -> tuple[list[float], list[float]]:
        """True angles (rad) → (quantized angles rad, finite-difference speeds rad/s); speed 0 on the first read."""
        res = self.rad_per_count
        q = [math.floor(a / res) * res for a in angle_rad]
        prev = self._prev if self._prev is not None else q
        dq = [(a - b) / self.period_s for a, b in zip(q, prev, strict=True)]
        self._prev = q
        return q, dq


class DelayLine(Generic[T]):
    """A FIFO of ``periods`` control periods: :meth:`push` returns what was pushed ``periods`` calls earlier
    (the first item fills the history, as a board that has just started repeats its first reading)."""

    def __init__(self, periods: int) -> None:
        self.periods = periods
        self._items: deque[T] = deque()

    def push(self, item: T) -> T:
        if not self._items:
            self._items.extend([item] * self.periods)
        self._items.append(item)
        return self._items.popleft()


def split_delay(delay_s: float, period_s: float, substeps: int) -> tuple[int, int]:
    """A sensor delay (s) as (whole control periods, physics substeps before the end of a period), rounded to one
    substep: the reading the policy gets at the end of period k was taken ``substeps`` substeps before the end of
    period ``k − periods``."""
    total = int(round(delay_s / period_s * substeps))
    return total // substeps, total % substeps


def spurious_returns(ranges_m: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Each ray independently, with probability ``rate``, returns a spurious *short* range, uniform between 0
    and its true range (dust, rain, a cable in the beam, multipath)."""
    r = np.asarray(ranges_m, dtype=np.float64)
    hit = rng.random(r.shape) < rate
    return np.where(hit, rng.random(r.shape) * r, r)


def child_rng(np_random: np.random.Generator) -> np.random.Generator:
    """An independent generator derived from an env's ``np_random`` *without advancing it* (numpy's
    ``Generator.spawn``: deterministic for a seeded env, a new child per call)."""
    return np_random.spawn(1)[0]
